/**
 * The digest of the shipped issuer catalog's PEMs that `npm run build` writes
 * (scripts/catalog-digest.mjs → dist/issuers-digest.json): every PEM is in it with what parsing
 * that PEM gives, and the builtin catalog loads from it exactly as when every PEM is parsed.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  builtinCatalogPath,
  catalogIssuerOf,
  loadCatalog,
  pemFacts,
} from '../../src/issuers/catalog.js';
import { builtinPemDigest, DIGEST_FILE, pemHash } from '../../src/issuers/pem-digest.js';
import { associationData } from '../../src/tlsa/association.js';
import { REPO_ROOT } from '../helpers/cli.js';

const LE_DIR = path.dirname(builtinCatalogPath('letsencrypt'));
const pems = fs
  .readdirSync(LE_DIR)
  .filter((f) => f.endsWith('.pem'))
  .map((f) => path.join(LE_DIR, f));

describe('the build-time digest of the shipped catalog PEMs', () => {
  it(`dist/${DIGEST_FILE} has every shipped PEM, with what parsing it gives`, () => {
    const digest = builtinPemDigest();
    expect(fs.existsSync(path.join(REPO_ROOT, 'dist', DIGEST_FILE))).toBe(true);
    expect(digest.size).toBe(pems.length);
    for (const f of pems) {
      const pem = fs.readFileSync(f);
      expect(digest.get(pemHash(pem)), f).toEqual(pemFacts(new X509Certificate(pem)));
    }
  });

  it('the builtin catalog loaded with it equals the one parsed without it', () => {
    const vouched = loadCatalog(builtinCatalogPath('letsencrypt'));
    const parsed = loadCatalog(builtinCatalogPath('letsencrypt'), new Map());
    const view = (c: typeof parsed) =>
      c.intermediates.map((i) => ({
        ...i,
        cert: i.cert.fingerprint256,
        spki: associationData(i.cert, 1, 1),
      }));
    expect(view(vouched)).toEqual(view(parsed));
    for (const f of pems) {
      const c = new X509Certificate(fs.readFileSync(f));
      expect(catalogIssuerOf(vouched, c)?.name).toBe(catalogIssuerOf(parsed, c)?.name);
    }
  });
});
