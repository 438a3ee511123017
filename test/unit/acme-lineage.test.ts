/** Writing a built-in ACME lineage: the CA's chain is split into the certbot files, refused when
 *  its leaf is for another key, and the lineage symlink is swapped to a complete release. */
import { lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { splitIssued, writeLineage } from '../../src/acme/lineage.js';
import { InputError, ProviderError } from '../../src/errors.js';
import { makeCa, makeLeaf, makeTempDir, removeTempDir } from '../helpers/pki.js';

const dir = makeTempDir('tlsa-acme-lineage-');
afterAll(() => removeTempDir(dir));
const root = makeCa(dir, { name: 'Lineage Root', key: 'p256' });
const inter = makeCa(dir, { name: 'Lineage Int', key: 'p256', issuer: root });
const leaf = makeLeaf(dir, { ca: inter, cn: 'mx.example.org', key: 'p256' });
const other = makeLeaf(dir, { ca: inter, cn: 'mx.example.org', key: 'p256' });
const issued = `${leaf.certPem.trim()}\n\n${inter.certPem.trim()}\n`;

describe('ACME lineage', () => {
  it('splits the chain into fullchain, cert and chain', () => {
    const f = splitIssued(issued, leaf.keyPem, 'acme(mx)');
    expect(f.cert.trim()).toBe(leaf.certPem.trim());
    expect(f.chain.trim()).toBe(inter.certPem.trim());
    expect(f.fullchain).toBe(`${f.cert}${f.chain}`);
  });

  it('refuses a chain for another key (exit 3)', () => {
    expect(() => splitIssued(issued, other.keyPem, 'acme(mx)')).toThrow(ProviderError);
    expect(() => splitIssued(issued, other.keyPem, 'acme(mx)')).toThrow(/for another key/);
  });

  it('swaps the lineage symlink to a new release and keeps two releases', () => {
    const lineage = join(dir, 'acme/mx/ecdsa-p256');
    const releases = join(dir, 'acme/mx/releases');
    const f = splitIssued(issued, leaf.keyPem, 'acme(mx)');
    for (let i = 1; i <= 3; i++)
      writeLineage(lineage, releases, f, leaf.keyPem, new Date(i * 1000));
    expect(lstatSync(lineage).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(lineage, 'fullchain.pem'), 'utf8')).toBe(f.fullchain);
    expect(statSync(join(lineage, 'privkey.pem')).mode & 0o777).toBe(0o600);
    expect(readdirSync(releases).sort()).toEqual(['ecdsa-p256-2000', 'ecdsa-p256-3000']);
  });

  it('refuses a directory in place of the lineage symlink (exit 2), writing nothing', () => {
    const lineage = join(dir, 'acme/web/ecdsa-p256');
    mkdirSync(lineage, { recursive: true });
    const releases = join(dir, 'acme/web/releases');
    const f = splitIssued(issued, leaf.keyPem, 'acme(web)');
    expect(() => writeLineage(lineage, releases, f, leaf.keyPem, new Date())).toThrow(InputError);
    expect(() => readdirSync(releases)).toThrow();
  });
});
