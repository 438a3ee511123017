/** Per-protocol rules on which records may be published. Pure. */
import { EXIT } from '../errors.js';
import { degenerateDataReason } from './association.js';
import { USAGE_NAMES, rdataText, type TlsaRecord } from './record.js';

/** smtps is SMTP over implicit TLS (RFC 8314, port 465); tls and https are other implicit-TLS
 *  services. smtp, submission, lmtp, imap and pop3 start TLS with STARTTLS. */
export const PROTOCOLS_LIST = [
  'smtp',
  'lmtp',
  'imap',
  'pop3',
  'submission',
  'smtps',
  'tls',
  'https',
] as const;
export type Protocol = (typeof PROTOCOLS_LIST)[number];

/** Every protocol that carries SMTP: RFC 7672's rule on PKIX usages holds on each of them,
 *  since an MTA relaying through submission or smtps is the same DANE client as on port 25. */
const SMTP_PROTOCOLS: ReadonlySet<Protocol> = new Set<Protocol>(['smtp', 'submission', 'smtps']);

/** What a port speaks when nothing is configured: the IANA assignments of the mail ports,
 *  implicit TLS elsewhere. */
export function defaultProtocol(port: number): Protocol {
  switch (port) {
    case 25:
      return 'smtp';
    case 587:
      return 'submission';
    case 465:
      return 'smtps';
    case 143:
      return 'imap';
    case 110:
      return 'pop3';
    default:
      return 'tls';
  }
}

/** Port 25 is SMTP whatever the config says; other ports speak what is configured, or their
 *  default. */
export function effectiveProtocol(port: number, protocol?: Protocol): Protocol {
  return port === 25 ? 'smtp' : (protocol ?? defaultProtocol(port));
}

export function isSmtp(port: number, protocol?: Protocol): boolean {
  return SMTP_PROTOCOLS.has(effectiveProtocol(port, protocol));
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
      `usage ${usage} (${USAGE_NAMES[usage]}) is refused for SMTP on port ${port} (${effectiveProtocol(port, protocol)}): RFC 7672 §3.1.3 says SMTP ` +
        `clients treat PKIX-TA/PKIX-EE records as unusable, and DANE-enforcing receivers such as web.de and GMX ` +
        `then refuse delivery (TLS alert 71 "insufficient security"). Use 3 1 1 (DANE-EE) and 2 1 1 (DANE-TA).`,
    );
  }
}

export function checkRecordData(r: TlsaRecord): void {
  const why = degenerateDataReason(r.matching, r.data);
  if (why) throw new PolicyError(`${r.owner} TLSA ${rdataText(r).slice(0, 40)}…: ${why}`);
}
