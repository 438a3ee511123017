/** Per-protocol rules on which records may be published. Pure. */
import { EXIT } from '../errors.js';
import { degenerateDataReason } from './association.js';
import { USAGE_NAMES, rdataText, type TlsaRecord } from './record.js';

export const PROTOCOLS_LIST = ['smtp', 'lmtp', 'imap', 'pop3', 'submission', 'tls', 'https'] as const;
export type Protocol = (typeof PROTOCOLS_LIST)[number];

/** Port 25 is SMTP whatever the config says; other ports follow the configured protocol. */
export function isSmtp(port: number, protocol?: Protocol): boolean {
  return port === 25 || protocol === 'smtp';
}

/** A record the rules forbid: a configuration error (exit 2). */
export class PolicyError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(message: string) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** RFC 7672 §3.1.3: SMTP clients treat PKIX usages as unusable, and receivers that enforce
 *  DANE may refuse the whole domain, so publishing them is an error, not a preference. */
export function checkUsageAllowed(usage: number, port: number, protocol?: Protocol): void {
  if ((usage === 0 || usage === 1) && isSmtp(port, protocol)) {
    throw new PolicyError(
      `usage ${usage} (${USAGE_NAMES[usage]}) is refused for SMTP on port ${port}: RFC 7672 §3.1.3 says SMTP ` +
        `clients treat PKIX-TA/PKIX-EE records as unusable, and DANE-enforcing receivers such as web.de and GMX ` +
        `then refuse delivery (TLS alert 71 "insufficient security"). Use 3 1 1 (DANE-EE) and 2 1 1 (DANE-TA).`,
    );
  }
}

export function checkRecordData(r: TlsaRecord): void {
  const why = degenerateDataReason(r.matching, r.data);
  if (why) throw new PolicyError(`${r.owner} TLSA ${rdataText(r).slice(0, 40)}…: ${why}`);
}
