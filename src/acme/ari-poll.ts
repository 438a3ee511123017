/** When to renew one certificate, asking the CA: its ARI window when the directory has
 *  `renewalInfo` and answers usably, else the lifetime rule. An unreachable directory or a bad
 *  renewalInfo answer only costs a warning: the lifetime rule still renews on time. */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { AcmeKeyType } from '../config/schema.js';
import { readInputText } from '../util/read-input.js';
import { ariCertIdOf } from './ari-id.js';
import { fetchRenewalInfo } from './ari-fetch.js';
import type { AcmeDirectory } from './directory.js';
import { type CurrentCert, decidedSchedule } from './renewal-step.js';
import type { RenewalSchedule } from './schedule-file.js';

/** The lineage's certificate (serial, validity, ARI id), or undefined when it has none. */
export function currentCertOf(lineage: string): CurrentCert | undefined {
  let pem: string;
  try {
    pem = readInputText(join(lineage, 'cert.pem'), {
      what: 'the ACME certificate',
      maxBytes: 1 << 20,
    });
  } catch {
    return undefined;
  }
  const cert = new X509Certificate(pem);
  let ariId: string | undefined;
  try {
    ariId = ariCertIdOf(pem);
  } catch {
    ariId = undefined; // no Authority Key Identifier: the lifetime rule alone
  }
  return {
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    ...(ariId ? { ariId } : {}),
  };
}

export interface AskCa {
  service: string;
  ca: string | undefined;
  now: Date;
  directoryOnce: () => Promise<AcmeDirectory>;
  progress?: (line: string) => void;
  warn?: (line: string) => void;
}

/** The schedule for `cert`. `justIssued`: a window already over for a certificate issued a
 *  moment ago is a CA mistake, not a request to renew again at once. */
export async function askCa(
  a: AskCa,
  keyType: AcmeKeyType,
  cert: CurrentCert,
  justIssued: boolean,
): Promise<RenewalSchedule> {
  const who = `${a.service} ${keyType}`;
  const byLifetime = (why: string | undefined, retryAfterS?: number) => {
    if (why) a.warn?.(`${who}: ${why}; the lifetime rule decides when to renew`);
    return decidedSchedule(cert, a.now, retryAfterS !== undefined ? { retryAfterS } : undefined);
  };
  let directory: AcmeDirectory;
  try {
    directory = await a.directoryOnce();
  } catch (e) {
    return byLifetime(`the CA cannot be asked for its renewal window (${(e as Error).message})`);
  }
  if (!directory.renewalInfo) return byLifetime(undefined);
  if (!cert.ariId)
    return byLifetime('the certificate has no Authority Key Identifier, so no ARI id');
  const answer = await fetchRenewalInfo(directory.renewalInfo, cert.ariId, a.ca, a.now);
  if (!answer.result.ok)
    return byLifetime(
      `the CA's renewalInfo answer is unusable (${answer.result.why})`,
      answer.retryAfterS,
    );
  const { window, explanationURL } = answer.result.info;
  if (justIssued && window.end.getTime() <= a.now.getTime())
    return byLifetime(
      'the CA suggests renewing the certificate it has just issued at once',
      answer.retryAfterS,
    );
  const schedule = decidedSchedule(cert, a.now, {
    window,
    ...(answer.retryAfterS !== undefined ? { retryAfterS: answer.retryAfterS } : {}),
  });
  a.progress?.(
    `${who}: the CA suggests renewing between ${window.start.toISOString()} and ${window.end.toISOString()}${explanationURL ? ` (${explanationURL})` : ''}: renewal at ${schedule.at}`,
  );
  return schedule;
}
