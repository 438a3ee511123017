/** Which chains a service serves now and which wait to be served (staged install). The
 *  staged state is derived from the files each time, never stored: a crash cannot desync it. */
import { resolve } from 'node:path';
import {
  loadChain,
  readPemFile,
  resolveSource,
  type CertSource,
  type LoadedChain,
} from '../certs/chain.js';
import { sourceName, toCertSource } from '../config/cert-sources.js';
import type { LoadedConfig } from '../config/load.js';
import type { RawCertificateSource, RawService } from '../config/schema.js';
import { InputError } from '../errors.js';
import { installPaths } from './install.js';
import { checkInstallLayout } from './install-layout.js';

// Part of what a service chain is: offered here too, beside serviceChains().
export { sourceName, toCertSource };

export type ChainRole = 'served' | 'staged';

export interface ServiceChain extends LoadedChain {
  role: ChainRole;
  /** Name of the installed copy: install.dir/NAME/current/. */
  sourceName: string;
  /** Where the chain's files are (for install: what gets copied). */
  source: CertSource;
  /** Staged with nothing installed yet: nothing is served from the install dir, so installing
   *  at once cannot break a client. */
  bootstrap?: boolean;
}

function sameChain(a: LoadedChain, b: LoadedChain): boolean {
  return (
    a.certs.length === b.certs.length &&
    a.certs.every((c, i) => c.x509.fingerprint256 === b.certs[i]!.x509.fingerprint256)
  );
}

/** The PEM texts to install for a staged chain: the chain as loaded, and its key. */
export function stagedFiles(chain: ServiceChain): { fullchainPem: string; keyPem: string } {
  const { files, key } = resolveSource(chain.source);
  if (!key)
    throw new InputError(
      'staged install needs the private key of the chain (privkey.pem in the lineage, or "key:")',
      chain.label,
    );
  return {
    fullchainPem: files.map((f) => `${readPemFile(f).trimEnd()}\n`).join(''),
    keyPem: readPemFile(key, 'private key file'),
  };
}

export type ChainLoader = (source: CertSource, now: Date) => LoadedChain;

/** A loader for one run: the same source (a lineage shared by thousands of services) is read,
 *  parsed and verified once. Make a new one per run, so that a long-running daemon sees a
 *  renewed lineage on its next run. A source that fails is not kept: it throws each time. */
export function loadEachChainOnce(load: ChainLoader = loadChain): ChainLoader {
  const loaded = new Map<string, LoadedChain>();
  // Services that name the same source are given the same source object (sourceOf below):
  // found by identity, without writing out its key each time.
  const bySource = new WeakMap<CertSource, { at: number; chain: LoadedChain }>();
  return (source, now) => {
    const at = now.getTime();
    const same = bySource.get(source);
    if (same?.at === at) return same.chain;
    const key = `${at} ${JSON.stringify(source)}`;
    let chain = loaded.get(key);
    if (!chain) {
      chain = load(source, now);
      loaded.set(key, chain);
    }
    bySource.set(source, { at, chain });
    return chain;
  };
}

/** A configured source as files and the name of its installed copy. Thousands of services
 *  name the same lineage: per config, each lineage (and name) is resolved once, and its
 *  services share the one source object. */
const lineageSources = new WeakMap<
  LoadedConfig,
  Map<string, { source: CertSource; name: string }>
>();

function sourceOf(src: RawCertificateSource, config: LoadedConfig) {
  if (!('lineage' in src)) {
    const source = toCertSource(src, config.baseDir);
    return { source, name: sourceName(src, source) };
  }
  let known = lineageSources.get(config);
  if (!known) {
    known = new Map();
    lineageSources.set(config, known);
  }
  const key = `${src.lineage}\0${src.name ?? ''}`;
  let found = known.get(key);
  if (!found) {
    const source = toCertSource(src, config.baseDir);
    found = { source, name: sourceName(src, source) };
    known.set(key, found);
  }
  return found;
}

/** A loaded chain as one service uses it: the chain's fields one by one, in the order a spread
 *  would give them (thousands of services share each loaded chain; a spread of each was a
 *  measurable part of a 10,000-service run). */
function asServiceChain(
  c: LoadedChain,
  use: Pick<ServiceChain, 'role' | 'sourceName' | 'source' | 'bootstrap'>,
): ServiceChain {
  const out = { label: c.label, certs: c.certs, leaf: c.leaf } as ServiceChain;
  if ('issuer' in c) out.issuer = c.issuer;
  out.keyType = c.keyType;
  if ('keyFile' in c) out.keyFile = c.keyFile;
  out.warnings = c.warnings;
  out.validityProblems = c.validityProblems;
  out.role = use.role;
  out.sourceName = use.sourceName;
  out.source = use.source;
  if ('bootstrap' in use) out.bootstrap = use.bootstrap;
  return out;
}

export function serviceChains(
  config: LoadedConfig,
  name: string,
  svc: RawService,
  now: Date,
  load: ChainLoader = loadChain,
): ServiceChain[] {
  const out: ServiceChain[] = [];
  svc.certificates.forEach((src, i) => {
    const { source, name: srcName } = sourceOf(src, config);
    if (out.some((c) => c.sourceName === srcName)) {
      throw config.error(
        ['services', name, 'certificates', i],
        `two certificate sources are both named "${srcName}"; give one a "name:"`,
      );
    }
    const fresh = load(source, now);
    if (!svc.install) {
      out.push(asServiceChain(fresh, { role: 'served', sourceName: srcName, source }));
      return;
    }
    const dir = resolve(config.baseDir, svc.install.dir);
    const paths = installPaths(dir, srcName);
    let installed: LoadedChain | undefined;
    // Nothing is read through a link tlsa did not make (exit 2 names it).
    if (checkInstallLayout(dir, srcName).current) {
      try {
        installed = load({ kind: 'files', fullchain: paths.fullchain, key: paths.key }, now);
      } catch (e) {
        if (!(e instanceof InputError) || !/file not found/.test(e.message)) throw e;
      }
    }
    if (installed)
      out.push(
        asServiceChain(installed, {
          role: 'served',
          sourceName: srcName,
          source: { kind: 'files', fullchain: paths.fullchain, key: paths.key },
        }),
      );
    if (!installed || !sameChain(installed, fresh)) {
      out.push(
        asServiceChain(fresh, {
          role: 'staged',
          sourceName: srcName,
          source,
          ...(installed ? {} : { bootstrap: true }),
        }),
      );
    }
  });
  return out;
}
