/** A configured certificate source as files, and the name of its installed copy: what the
 *  config's checks and the engine both need to know about a source. */
import { basename, dirname, resolve } from 'node:path';
import type { CertSource } from '../certs/chain.js';
import type { RawCertificateSource } from './schema.js';

export function toCertSource(src: RawCertificateSource, baseDir: string): CertSource {
  if ('lineage' in src) return { kind: 'lineage', dir: resolve(baseDir, src.lineage) };
  const abs = (p: string | undefined) => (p ? resolve(baseDir, p) : undefined);
  if ('fullchain' in src)
    return {
      kind: 'files',
      fullchain: abs(src.fullchain)!,
      ...(src.key ? { key: abs(src.key)! } : {}),
    };
  return {
    kind: 'files',
    cert: abs(src.cert)!,
    ...(src.chain ? { chain: abs(src.chain)! } : {}),
    ...(src.key ? { key: abs(src.key)! } : {}),
  };
}

export function sourceName(src: RawCertificateSource, source: CertSource): string {
  if (src.name) return src.name;
  if (source.kind === 'lineage') return basename(source.dir);
  return basename(dirname(source.fullchain ?? source.cert ?? 'chain'));
}
