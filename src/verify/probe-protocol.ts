/** Which handshake the probe opens on a port: shared by `tlsa check` (verify/check.ts) and the
 *  engine's live view (engine/observe.ts), so it lives below both. */
import { effectiveProtocol, type Protocol } from '../tlsa/policy.js';
import type { ProbeProtocol } from './probe.js';

/** How to reach the TLS handshake on a port that speaks `protocol` (or its default). */
export function probeProtocol(port: number, protocol: Protocol | undefined): ProbeProtocol {
  switch (effectiveProtocol(port, protocol)) {
    case 'smtp':
    case 'submission':
      return 'smtp';
    case 'lmtp':
      return 'lmtp';
    case 'imap':
      return 'imap';
    case 'pop3':
      return 'pop3';
    case 'smtps':
    case 'tls':
    case 'https':
      return 'tls';
  }
}
