/** `tlsa renew` for one service's `acme:` block: for each key type, renew the lineage when it
 *  is due (or forced), writing it only once the CA has issued a chain for our key. */
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { AcmeKeyType, RawAcme } from '../config/schema.js';
import { readInputText } from '../util/read-input.js';
import { removeServiceLeftovers, solverFor } from './challenge-setup.js';
import { directoryUrlOf, fetchDirectory } from './directory.js';
import { keyOnce } from './key-file.js';
import { nextKeyPath, readNextKey } from './next-key-files.js';
import { type RenewalKey, renewalKey } from './next-key.js';
import { splitIssued, writeLineage } from './lineage.js';
import { createAccountKey, createKey, orderCertificate } from './order.js';
import { accountKeyPath, lineageDir, releasesDir } from './paths.js';
import { selectProfile } from './profile.js';
import { isDue, type RenewalDecision, renewalTime } from './renewal-time.js';

export interface LineageRenewal {
  service: string;
  keyType: AcmeKeyType;
  lineage: string;
  /** renewed, or not due yet (with when it will be). */
  outcome: 'renewed' | 'not-due';
  /** The key the renewal used: the published next key, or a fresh one (and why). */
  key?: RenewalKey;
  due?: RenewalDecision;
  notAfter?: Date;
}

/** When the lineage's current certificate is due (lifetime rule; ARI is not asked yet), or
 *  undefined when there is none. */
export function dueOf(lineage: string, now: Date): RenewalDecision | undefined {
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
  return renewalTime({
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    now,
  });
}

/** The PEM CA of a private ACME server's HTTPS certificate (a missing file is bad input). */
function caBundle(acme: RawAcme, baseDir: string): string | undefined {
  if (!acme.ca_bundle) return undefined;
  return readInputText(resolve(baseDir, acme.ca_bundle), {
    what: 'the ACME CA bundle (ca_bundle)',
    maxBytes: 1 << 20,
  });
}

export async function renewService(
  config: LoadedConfig,
  service: string,
  opts: {
    force: boolean;
    now: Date;
    progress?: (line: string) => void;
    /** Whether the service's 3 1 1 record with this data is live (the engine's rule). */
    isLive: (spkiSha256: string) => boolean;
  },
): Promise<LineageRenewal[]> {
  const svc = config.raw.services[service]!;
  const acme = svc.acme!;
  await removeServiceLeftovers(config, service, opts.progress);
  const plan = acme.key_types.map((keyType) => {
    const lineage = lineageDir(config.stateDir, service, keyType);
    const due = dueOf(lineage, opts.now);
    return { keyType, lineage, due, needed: opts.force || !due || isDue(due, opts.now) };
  });
  const results: LineageRenewal[] = plan
    .filter((p) => !p.needed)
    .map((p) => ({
      service,
      keyType: p.keyType,
      lineage: p.lineage,
      outcome: 'not-due',
      due: p.due!,
    }));
  const todo = plan.filter((p) => p.needed);
  if (!todo.length) {
    await ensureNextKeys(config.stateDir, service, acme.key_types);
    return results;
  }

  const solver = await solverFor(config, service, opts.progress);
  const directoryUrl = directoryUrlOf(acme.directory);
  const ca = caBundle(acme, config.baseDir);
  const directory = await fetchDirectory(directoryUrl, ca);
  const profile = selectProfile(acme.profile, directory.meta, directoryUrl);
  const accountKey = await keyOnce(accountKeyPath(config.stateDir, directoryUrl), createAccountKey);
  const names = acme.names ?? [svc.host];
  for (const p of todo) {
    opts.progress?.(`${service}: ordering a ${p.keyType} certificate for ${names.join(', ')}`);
    const next = readNextKey(config.stateDir, service, p.keyType);
    const key = renewalKey(next?.spkiSha256, opts.isLive);
    const keyPem = key.use === 'next' ? next!.pem : await createKey(p.keyType);
    const chainPem = await orderCertificate({
      service,
      directoryUrl,
      directory,
      accountKey,
      ...(acme.contact ? { contact: acme.contact } : {}),
      ...(acme.eab ? { eab: { kid: acme.eab.kid, hmacKey: acme.eab.hmac_key } } : {}),
      ...(ca ? { ca } : {}),
      names,
      ...(profile ? { profile } : {}),
      keyPem,
      solver,
    });
    const files = splitIssued(chainPem, keyPem, `acme(${service})`);
    writeLineage(p.lineage, releasesDir(config.stateDir, service), files, keyPem, opts.now);
    // The next key now serves: the following renewal gets a new one (made below).
    if (key.use === 'next') rmSync(nextKeyPath(config.stateDir, service, p.keyType));
    results.push({
      service,
      keyType: p.keyType,
      lineage: p.lineage,
      outcome: 'renewed',
      key,
      notAfter: new Date(new X509Certificate(files.cert).validTo),
    });
  }
  await ensureNextKeys(config.stateDir, service, acme.key_types);
  return results;
}

/** Every key type has a next key (its record is published by the engine's run that follows). */
async function ensureNextKeys(
  stateDir: string,
  service: string,
  keyTypes: readonly AcmeKeyType[],
): Promise<void> {
  for (const k of keyTypes) await keyOnce(nextKeyPath(stateDir, service, k), () => createKey(k));
}
