#!/usr/bin/env node
// Writes dist/issuers-digest.json after `tsc` (npm run build): for each PEM of the built-in
// issuer catalogs (src/issuers/<ca>/*.pem), keyed by the SHA-256 of its bytes, what loading and
// matching the catalog reads from the certificate, computed by the built catalog code itself
// (pemFacts). A plan then parses only the intermediates it uses.
// Usage: node scripts/catalog-digest.mjs
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { BUILTIN_CATALOGS, pemFacts } = await import(join(ROOT, 'dist/src/issuers/catalog.js'));
const { DIGEST_FILE, pemHash } = await import(join(ROOT, 'dist/src/issuers/pem-digest.js'));

const pems = {};
for (const ca of BUILTIN_CATALOGS) {
  const dir = join(ROOT, 'src/issuers', ca);
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.pem'))
    .sort()) {
    const pem = readFileSync(join(dir, f));
    pems[pemHash(pem)] = pemFacts(new X509Certificate(pem));
  }
}
const out = join(ROOT, 'dist', DIGEST_FILE);
writeFileSync(out, `${JSON.stringify({ pems }, null, 1)}\n`);
process.stdout.write(`catalog digest: ${Object.keys(pems).length} PEMs -> ${out}\n`);
