/** `tlsa generate`: records for one or more chains, printed in zone-file form. No config, no provider. */
import { resolve } from 'node:path';
import { loadChain } from '../certs/chain.js';
import { DEFAULT_SPECS, desiredRecords } from '../engine/desired.js';
import { parseSpec } from '../engine/targets.js';
import { InputError } from '../errors.js';
import { bothForms, HostError, parseHost } from '../tlsa/host.js';
import { builtinCatalogPath, BUILTIN_CATALOGS, loadCatalog } from '../issuers/catalog.js';
import { PROTOCOLS_LIST, type Protocol } from '../tlsa/policy.js';
import { formatRecord } from '../tlsa/presentation.js';
import { rdataText } from '../tlsa/record.js';
import { note, out, printJson, warn } from './fail.js';
import type { CliValues } from './options.js';

function intOption(
  value: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InputError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

export async function run(v: CliValues): Promise<number> {
  if (!v.chain?.length)
    throw new InputError('generate needs --chain FILE (a fullchain PEM, leaf first)');
  if (!v.host) throw new InputError('generate needs --host NAME (for SMTP the MX host name)');
  if (v.key && v.chain.length > 1) throw new InputError('--key goes with a single --chain');
  if (v.protocol && !(PROTOCOLS_LIST as readonly string[]).includes(v.protocol)) {
    throw new InputError(`--protocol must be one of ${PROTOCOLS_LIST.join(', ')}`);
  }
  let host;
  try {
    host = parseHost(v.host);
  } catch (e) {
    if (e instanceof HostError) throw new InputError(`--host: ${e.message}`);
    throw e;
  }
  const ports = (v.port ?? ['25']).map((p) => intOption(p, 'port', 25, 1, 65535));
  const ttl = intOption(v.ttl, 'ttl', 3600, 1, 604800);
  const now = new Date();
  const chains = v.chain.map((f) =>
    loadChain(
      { kind: 'files', fullchain: resolve(f), ...(v.key ? { key: resolve(v.key) } : {}) },
      now,
    ),
  );
  const specs = (v.records ?? []).map((t) => {
    try {
      return parseSpec(t);
    } catch (e) {
      throw new InputError(`--records "${t}": ${(e as Error).message}`);
    }
  });
  const issuers = v.issuers ?? 'letsencrypt';
  const catalog =
    issuers === 'none'
      ? undefined
      : loadCatalog(
          (BUILTIN_CATALOGS as readonly string[]).includes(issuers)
            ? builtinCatalogPath(issuers)
            : resolve(issuers),
        );
  let result;
  try {
    result = desiredRecords(
      {
        name: 'generate',
        host: host.ascii,
        ports,
        ...(v.protocol ? { protocol: v.protocol as Protocol } : {}),
        records: specs.length ? specs : DEFAULT_SPECS,
        chains,
        ...(catalog ? { catalog } : {}),
        cap: 100,
      },
      now,
    );
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  const warnings = [
    ...chains.flatMap((c) => [...c.warnings, ...c.validityProblems]),
    ...result.warnings,
  ];
  warn(warnings);
  note(result.notes);
  if (v.json) {
    return printJson('generate', 0, {
      host: { ascii: host.ascii, unicode: host.unicode },
      records: result.records.map((r) => ({
        owner: r.owner,
        ttl,
        usage: r.usage,
        selector: r.selector,
        matching: r.matching,
        data: r.data,
        rdata: rdataText(r),
        why: r.why,
        matchesServed: r.matchesServed,
      })),
      chains: chains.map((c) => ({
        source: c.label,
        keyType: c.keyType.label,
        leaf: c.leaf.name,
        issuer: c.issuer?.name ?? null,
        notAfter: new Date(c.leaf.x509.validTo).toISOString(),
      })),
    });
  } else {
    const lines = result.records.map(
      (r) => formatRecord(r, ttl) + (v.explain ? ` ; ${r.why}` : ''),
    );
    // A zone-file comment, so the output stays loadable as it is.
    if (host.unicode !== host.ascii)
      lines.unshift(`; host ${bothForms(host.ascii)}: DNS and certificates use the A-label form`);
    out(`${lines.join('\n')}\n`);
  }
  return 0;
}
