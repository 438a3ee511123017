/** The HTTP-01 webroot responder on layouts it did not make: the webroot belongs to the web
 *  server's user, tlsa may run as root, so nothing it writes may go through a link. */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { standaloneResponder, webrootResponder } from '../../src/acme/http01.js';
import { InputError, ProviderError } from '../../src/errors.js';

const root = mkdtempSync(join(tmpdir(), 'tlsa-webroot-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(root, String(n++));
  mkdirSync(d);
  return d;
};

describe('webroot responder', () => {
  it('writes the token under .well-known/acme-challenge and removes it on close', async () => {
    const web = fresh();
    const r = webrootResponder(web);
    await r.add('tok_en-1', 'tok_en-1.thumb');
    const file = join(web, '.well-known/acme-challenge/tok_en-1');
    expect(readFileSync(file, 'utf8')).toBe('tok_en-1.thumb');
    await r.close();
    expect(existsSync(file)).toBe(false);
  });

  it('makes the token readable by the web server whatever the umask', async () => {
    const web = fresh();
    const old = process.umask(0o077);
    try {
      const r = webrootResponder(web);
      await r.add('t', 't.x');
      expect(statSync(join(web, '.well-known/acme-challenge/t')).mode & 0o777).toBe(0o644);
      expect(statSync(join(web, '.well-known/acme-challenge')).mode & 0o777).toBe(0o755);
      await r.close();
    } finally {
      process.umask(old);
    }
  });

  it('refuses a symlinked acme-challenge directory and writes nothing where it points', async () => {
    const web = fresh();
    const elsewhere = fresh();
    mkdirSync(join(web, '.well-known'));
    symlinkSync(elsewhere, join(web, '.well-known/acme-challenge'));
    const r = webrootResponder(web);
    const err = await r.add('abc', 'abc.x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/must be a directory/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('refuses a symlinked .well-known', async () => {
    const web = fresh();
    const elsewhere = fresh();
    symlinkSync(elsewhere, join(web, '.well-known'));
    const err = await webrootResponder(web)
      .add('abc', 'abc.x')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('replaces a symlink planted under the token name instead of writing through it', async () => {
    const web = fresh();
    const target = join(fresh(), 'victim');
    writeFileSync(target, 'precious');
    mkdirSync(join(web, '.well-known/acme-challenge'), { recursive: true });
    symlinkSync(target, join(web, '.well-known/acme-challenge/tok'));
    const r = webrootResponder(web);
    await r.add('tok', 'tok.x');
    expect(readFileSync(target, 'utf8')).toBe('precious');
    expect(readFileSync(join(web, '.well-known/acme-challenge/tok'), 'utf8')).toBe('tok.x');
    await r.close();
  });

  it('refuses a token that is not base64url (a path from a broken CA)', async () => {
    const web = fresh();
    const err = await webrootResponder(web)
      .add('../../escape', 'x')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(existsSync(join(web, '..', 'escape'))).toBe(false);
  });
});

describe('standalone responder', () => {
  it('refuses a token that is not base64url', async () => {
    const r = await standaloneResponder('127.0.0.1:0');
    try {
      await expect(r.add('a/b', 'x')).rejects.toBeInstanceOf(ProviderError);
    } finally {
      await r.close();
    }
  });
});
