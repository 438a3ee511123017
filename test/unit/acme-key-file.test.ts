/** Keys built-in ACME keeps in the state directory: created once (0600), reused, and never read
 *  through a symlink or from a FIFO put in their place. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyOnce, readKeyFile } from '../../src/acme/key-file.js';
import { accountKeyPath } from '../../src/acme/paths.js';
import { InputError } from '../../src/errors.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const dir = makeTempDir('tlsa-acme-key-');
afterAll(() => removeTempDir(dir));

describe('account key file', () => {
  it('is created once with mode 0600 and reused; one per directory URL', async () => {
    const path = accountKeyPath(dir, 'https://ca.example/dir');
    expect(accountKeyPath(dir, 'https://other.example/dir')).not.toBe(path);
    let made = 0;
    const create = async () => `KEY ${++made}\n`;
    expect(await keyOnce(path, create)).toBe('KEY 1\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await keyOnce(path, create)).toBe('KEY 1\n');
    expect(made).toBe(1);
  });

  it('refuses a symlink in its place (exit 2), without following it', async () => {
    const target = join(dir, 'elsewhere.pem');
    writeFileSync(target, 'NOT OURS\n');
    const path = accountKeyPath(dir, 'https://symlink.example/dir');
    mkdirSync(join(path, '..'), { recursive: true });
    symlinkSync(target, path);
    const e = await keyOnce(path, async () => 'NEW\n').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).exitCode).toBe(2);
    expect((e as InputError).message).toMatch(/symlink is refused/);
  });

  it('refuses a FIFO in its place at once (no hang)', () => {
    const path = join(dir, 'fifo.key');
    execFileSync('mkfifo', [path]);
    expect(() => readKeyFile(path)).toThrow(/must be a regular file/);
  });
});
