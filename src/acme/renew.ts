/** `tlsa renew` for one service's `acme:` block: for each key type, renew the lineage when it
 *  is due (or forced), writing it only once the CA has issued a chain for our key. */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { AcmeKeyType, RawAcme } from '../config/schema.js';
import { readInputText } from '../util/read-input.js';
import { exitCodeOf, EXIT } from '../errors.js';
import { redact } from '../util/redact.js';
import { type AskCa, askCa, currentCertOf } from './ari-poll.js';
import { RateLimitedError } from './ca-problem.js';
import { type AcmeDirectory, directoryUrlOf, fetchDirectory } from './directory.js';
import { removeServiceLeftovers, solverFor } from './challenge-setup.js';
import { keyOnce } from './key-file.js';
import { nextKeyPath, readNextKey } from './next-key-files.js';
import { type RenewalKey, renewalKey } from './next-key.js';
import { splitIssued, writeLineage } from './lineage.js';
import { createAccountKey, createKey, orderCertificate } from './order.js';
import { accountKeyPath, lineageDir, releasesDir } from './paths.js';
import { selectProfile } from './profile.js';
import { type RenewalDecision, renewalTime } from './renewal-time.js';
import {
  type CurrentCert,
  type Due,
  dueOfSchedule,
  rateLimitSchedule,
  retrySchedule,
  stepFor,
} from './renewal-step.js';
import { type RenewalSchedule, readSchedule, writeSchedule } from './schedule-file.js';

export interface LineageRenewal {
  service: string;
  keyType: AcmeKeyType;
  lineage: string;
  /** renewed, or not due yet (with when it will be). */
  outcome: 'renewed' | 'not-due';
  /** The key the renewal used: the published next key, or a fresh one (and why). */
  key?: RenewalKey;
  /** Not due: when it will be, and from where (ARI window, lifetime rule, a backoff). */
  due?: Due;
  notAfter?: Date;
}

/** When the lineage's current certificate is due by the lifetime rule alone (without asking the
 *  CA), or undefined when there is none. */
export function dueOf(lineage: string, now: Date): RenewalDecision | undefined {
  const cert = currentCertOf(lineage);
  return cert && renewalTime({ notBefore: cert.notBefore, notAfter: cert.notAfter, now });
}

/** The PEM CA of a private ACME server's HTTPS certificate (a missing file is bad input). */
function caBundle(acme: RawAcme, baseDir: string): string | undefined {
  if (!acme.ca_bundle) return undefined;
  return readInputText(resolve(baseDir, acme.ca_bundle), {
    what: 'the ACME CA bundle (ca_bundle)',
    maxBytes: 1 << 20,
  });
}

interface Lineage {
  keyType: AcmeKeyType;
  lineage: string;
  cert: CurrentCert | undefined;
  stored: RenewalSchedule | undefined;
}

export async function renewService(
  config: LoadedConfig,
  service: string,
  opts: {
    force: boolean;
    now: Date;
    progress?: (line: string) => void;
    /** A line the operator should act on (an unusable ARI answer); progress when not given. */
    warn?: (line: string) => void;
    /** Whether the service's 3 1 1 record with this data is live (the engine's rule). */
    isLive: (spkiSha256: string) => boolean;
  },
): Promise<LineageRenewal[]> {
  const svc = config.raw.services[service]!;
  const acme = svc.acme!;
  await removeServiceLeftovers(config, service, opts.progress);
  const { now } = opts;
  const warn = opts.warn ?? opts.progress;
  const directoryUrl = directoryUrlOf(acme.directory);
  const ca = caBundle(acme, config.baseDir);
  let directory: AcmeDirectory | undefined;
  // Fetched once, and only when needed: a run with nothing to ask the CA makes no request.
  const directoryOnce = async () => {
    directory ??= await fetchDirectory(directoryUrl, ca);
    return directory;
  };
  const ask: AskCa = {
    service,
    ca,
    now,
    directoryOnce,
    ...(opts.progress ? { progress: opts.progress } : {}),
    ...(warn ? { warn } : {}),
  };

  const results: LineageRenewal[] = [];
  const todo: Lineage[] = [];
  for (const keyType of acme.key_types) {
    const lineage = lineageDir(config.stateDir, service, keyType);
    const cert = currentCertOf(lineage);
    const stored = readSchedule(config.stateDir, service, keyType);
    let step = stepFor(cert, stored, now, opts.force);
    if (step.kind === 'rate-limited')
      throw new RateLimitedError(
        `acme(${service})`,
        step.until,
        `${keyType} is not asked for again before then${step.lastError ? ` (the CA said: ${step.lastError})` : ''}`,
      );
    if (step.kind === 'decide') {
      const schedule = await askCa(ask, keyType, cert!, false);
      writeSchedule(config.stateDir, service, keyType, schedule);
      step =
        Date.parse(schedule.at) <= now.getTime()
          ? { kind: 'renew', why: 'due' }
          : { kind: 'not-due', due: dueOfSchedule(schedule) };
    }
    if (step.kind === 'renew') todo.push({ keyType, lineage, cert, stored });
    else results.push({ service, keyType, lineage, outcome: 'not-due', due: step.due });
  }
  if (!todo.length) {
    await ensureNextKeys(config.stateDir, service, acme.key_types);
    return results;
  }

  // Bad configuration (a provider without TXT) is found before the CA is asked.
  const solver = await solverFor(config, service, opts.progress);
  const names = acme.names ?? [svc.host];
  for (const p of todo) {
    try {
      const dir = await directoryOnce();
      const profile = selectProfile(acme.profile, dir.meta, directoryUrl);
      const accountKey = await keyOnce(
        accountKeyPath(config.stateDir, directoryUrl),
        createAccountKey,
      );
      opts.progress?.(`${service}: ordering a ${p.keyType} certificate for ${names.join(', ')}`);
      const next = readNextKey(config.stateDir, service, p.keyType);
      const key = renewalKey(next?.spkiSha256, opts.isLive);
      const keyPem = key.use === 'next' ? next!.pem : await createKey(p.keyType);
      // RFC 9773 §5: the CA learns which certificate this one replaces (and may exempt the
      // order from rate limits); only a CA with ARI knows the field.
      const replaces = dir.renewalInfo ? p.cert?.ariId : undefined;
      const chainPem = await orderCertificate({
        service,
        directoryUrl,
        directory: dir,
        accountKey,
        ...(acme.contact ? { contact: acme.contact } : {}),
        ...(acme.eab ? { eab: { kid: acme.eab.kid, hmacKey: acme.eab.hmac_key } } : {}),
        ...(ca ? { ca } : {}),
        names,
        ...(profile ? { profile } : {}),
        ...(replaces ? { replaces } : {}),
        keyPem,
        solver,
        ...(opts.progress ? { progress: opts.progress } : {}),
      });
      const files = splitIssued(chainPem, keyPem, `acme(${service})`);
      writeLineage(p.lineage, releasesDir(config.stateDir, service), files, keyPem, now);
      // The next key now serves: the following renewal gets a new one (made below).
      if (key.use === 'next') rmSync(nextKeyPath(config.stateDir, service, p.keyType));
      const issued = currentCertOf(p.lineage)!;
      writeSchedule(config.stateDir, service, p.keyType, await askCa(ask, p.keyType, issued, true));
      results.push({
        service,
        keyType: p.keyType,
        lineage: p.lineage,
        outcome: 'renewed',
        key,
        notAfter: issued.notAfter,
      });
    } catch (e) {
      recordFailure(config.stateDir, service, p, now, e);
      throw e;
    }
  }
  await ensureNextKeys(config.stateDir, service, acme.key_types);
  return results;
}

/** A failed renewal leaves the lineage as it was and says when to try again: the CA's time for
 *  rateLimited, a backoff for any other failure of the CA or the network. Bad input (exit 2)
 *  needs the operator, and a first issuance has nothing to keep serving: neither is scheduled. */
function recordFailure(stateDir: string, service: string, p: Lineage, now: Date, e: unknown): void {
  const why = redact((e as Error).message ?? String(e));
  if (e instanceof RateLimitedError)
    writeSchedule(
      stateDir,
      service,
      p.keyType,
      rateLimitSchedule(p.cert?.serial ?? '', e.retryAt, now, redact(e.why)),
    );
  else if (p.cert && exitCodeOf(e) === EXIT.provider)
    writeSchedule(stateDir, service, p.keyType, retrySchedule(p.cert.serial, p.stored, now, why));
}

/** Every key type has a next key (its record is published by the engine's run that follows). */
async function ensureNextKeys(
  stateDir: string,
  service: string,
  keyTypes: readonly AcmeKeyType[],
): Promise<void> {
  for (const k of keyTypes) await keyOnce(nextKeyPath(stateDir, service, k), () => createKey(k));
}
