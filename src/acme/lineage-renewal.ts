/** A built-in ACME lineage's next renewal as the files say it (its certificate and the schedule
 *  `renew` wrote), for the daemon and `status`: neither asks the CA. */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { AcmeKeyType } from '../config/schema.js';
import { readInputText } from '../util/read-input.js';
import { lineageDir } from './paths.js';
import { type CertFacts, type NextRenewal, renewalDecision } from './renewal-decision.js';
import { readSchedule } from './schedule-file.js';

export interface LineageRenewalView {
  service: string;
  keyType: AcmeKeyType;
  lineage: string;
  /** Undefined before the first issuance (or when the certificate cannot be read). */
  cert?: CertFacts;
  next: NextRenewal;
  /** When the schedule that decided `next` was written. */
  scheduleDecidedAt?: Date;
}

function readCert(lineage: string): CertFacts | undefined {
  try {
    const cert = new X509Certificate(
      readInputText(join(lineage, 'cert.pem'), { what: 'the ACME certificate', maxBytes: 1 << 20 }),
    );
    return {
      serial: cert.serialNumber,
      notBefore: new Date(cert.validFrom),
      notAfter: new Date(cert.validTo),
    };
  } catch {
    // Missing or damaged: renewing is what repairs it.
    return undefined;
  }
}

export function readLineageRenewal(
  stateDir: string,
  service: string,
  keyType: AcmeKeyType,
  now: Date,
): LineageRenewalView {
  const lineage = lineageDir(stateDir, service, keyType);
  const cert = readCert(lineage);
  const { next, decidedAt } = renewalDecision(cert, readSchedule(stateDir, service, keyType), now);
  return {
    service,
    keyType,
    lineage,
    ...(cert ? { cert } : {}),
    next,
    ...(decidedAt ? { scheduleDecidedAt: decidedAt } : {}),
  };
}
