/** From a loaded config to the records every service wants: loads the chains and catalogs
 *  (file reads) and hands them to the pure desired-record computation. */
import { resolve } from 'node:path';
import { nextKeysOf } from '../acme/next-key-files.js';
import type { LoadedConfig } from '../config/load.js';
import { servicePorts, type PortProtocol } from '../config/ports.js';
import { InputError } from '../errors.js';
import {
  builtinCatalogPath,
  BUILTIN_CATALOGS,
  loadCatalog,
  type IssuerCatalog,
} from '../issuers/catalog.js';
import { coverageWarnings, type CoverageGap } from '../tlsa/host.js';
import { PolicyError } from '../tlsa/policy.js';
import { parseRdata } from '../tlsa/presentation.js';
import {
  type CatalogMiss,
  catalogMissNotes,
  DEFAULT_SPECS,
  desiredRecords,
  type DesiredRecord,
  type RecordSpec,
} from './desired.js';
import type { TargetRecord } from './plan.js';
import { loadEachChainOnce, serviceChains, type ServiceChain } from './sources.js';

export interface ServiceTargets {
  service: string;
  provider: string;
  host: string;
  /** Each port with the protocol it speaks. */
  ports: PortProtocol[];
  /** Served and staged chains. */
  chains: ServiceChain[];
}

export interface Targets {
  records: TargetRecord[];
  services: ServiceTargets[];
  warnings: string[];
  /** Not problems, said by plan: e.g. a chain the issuer catalog does not apply to. */
  notes: string[];
  /** Expired / not yet valid certificates: publish refuses them unless forced. */
  validityProblems: string[];
}

export function parseSpec(text: string): RecordSpec {
  const { usage, selector, matching } = parseRdata(`${text.trim()} 00`);
  return { usage, selector, matching };
}

export function selectServices(config: LoadedConfig, names: string[] | undefined): string[] {
  const all = Object.keys(config.raw.services);
  if (!names?.length) return all;
  for (const n of names) {
    if (!all.includes(n))
      throw new InputError(
        `unknown service "${n}" (the configuration defines: ${all.join(', ') || 'none'})`,
        config.file,
      );
  }
  return names;
}

/** Where each built-in catalog is: the same for the whole process, asked by every service. */
const builtinPaths = new Map<string, string>();

function builtinPathOf(ca: string): string {
  let file = builtinPaths.get(ca);
  if (file === undefined) {
    file = builtinCatalogPath(ca);
    builtinPaths.set(ca, file);
  }
  return file;
}

/** The issuer catalog a service's `issuers:` names (undefined for "none"), loaded once per file. */
export function serviceCatalog(
  config: LoadedConfig,
  name: string,
  cache = new Map<string, IssuerCatalog>(),
): IssuerCatalog | undefined {
  const issuers = config.raw.services[name]!.issuers ?? 'letsencrypt';
  if (issuers === 'none') return undefined;
  const file = (BUILTIN_CATALOGS as readonly string[]).includes(issuers)
    ? builtinPathOf(issuers)
    : resolve(config.baseDir, issuers);
  const catalog = cache.get(file) ?? loadCatalog(file);
  cache.set(file, catalog);
  return catalog;
}

/** The desired record with where it goes: the fields one by one, in the order a spread would
 *  give them (a spread of each of 40,000 records cost half a second of a 10,000-service run). */
function targetRecord(
  r: DesiredRecord,
  provider: string,
  service: string,
  ttl: number,
): TargetRecord {
  return {
    owner: r.owner,
    usage: r.usage,
    selector: r.selector,
    matching: r.matching,
    data: r.data,
    why: r.why,
    matchesServed: r.matchesServed,
    chains: r.chains,
    provider,
    service,
    ttl,
  };
}

export function computeTargets(config: LoadedConfig, serviceNames: string[], now: Date): Targets {
  const catalogs = new Map<string, IssuerCatalog>();
  const loadChain = loadEachChainOnce();
  const specsRead = new Map<string, RecordSpec>();
  const records: TargetRecord[] = [];
  const services: ServiceTargets[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  const validityProblems: string[] = [];
  const coverageGaps: CoverageGap[] = [];
  const catalogMisses: CatalogMiss[] = [];
  for (const name of serviceNames) {
    const svc = config.raw.services[name]!;
    const at = (...p: (string | number)[]) => ['services', name, ...p];
    const specs = (svc.records ?? []).map((t, i) => {
      try {
        // Thousands of services say the same few specs: each text is parsed once per run.
        const known = specsRead.get(t);
        if (known) return known;
        const spec = parseSpec(t);
        specsRead.set(t, spec);
        return spec;
      } catch (e) {
        throw config.error(at('records', i), (e as Error).message);
      }
    });
    const catalog = serviceCatalog(config, name, catalogs);
    const chains = serviceChains(config, name, svc, now, loadChain);
    for (const c of chains) {
      warnings.push(...c.warnings);
      validityProblems.push(...c.validityProblems);
    }
    const ttl = svc.ttl ?? config.raw.ttl;
    let result;
    try {
      result = desiredRecords(
        {
          name,
          host: svc.host,
          ports: svc.ports,
          ...(svc.protocol ? { protocol: svc.protocol } : {}),
          records: specs.length ? specs : DEFAULT_SPECS,
          chains,
          ...(catalog ? { catalog } : {}),
          cap: config.raw.max_records_per_name,
          ...(svc.acme ? { nextKeys: nextKeysOf(config.stateDir, name, svc.acme.key_types) } : {}),
          summarise: true,
        },
        now,
      );
    } catch (e) {
      if (e instanceof PolicyError || e instanceof RangeError)
        throw config.error(at(e instanceof RangeError ? 'host' : 'records'), e.message);
      throw e;
    }
    warnings.push(...result.warnings);
    for (const g of result.coverageGaps) coverageGaps.push(g);
    notes.push(...result.notes);
    for (const m of result.catalogMisses) catalogMisses.push(m);
    for (const r of result.records) records.push(targetRecord(r, svc.provider, name, ttl));
    services.push({
      service: name,
      provider: svc.provider,
      host: svc.host,
      ports: servicePorts(svc),
      chains,
    });
  }
  // One warning per lineage whose leaf misses hosts, after the services' own warnings.
  for (const w of coverageWarnings(coverageGaps)) warnings.push(w);
  // Likewise one note per chain the catalog does not speak for, after the services' own notes.
  for (const n of catalogMissNotes(catalogMisses)) notes.push(n);
  return { records, services, warnings, notes, validityProblems };
}
