/** The code cache file (src/cli/code-cache-file.ts): only bytes it wrote are handed to V8, and
 *  writing it never goes through a link or into someone else's file. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCodeCache, writeCodeCache } from '../../src/cli/code-cache-file.js';

let dir: string;
let file: string;
const DATA = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsa-code-cache-'));
  file = path.join(dir, 'cli-TEST.cjs.cache');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('code cache file', () => {
  it('reads back what was written, as a regular file of mode 0644, no temp file left', () => {
    writeCodeCache(file, () => DATA);
    expect(readCodeCache(file)?.equals(DATA)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([path.basename(file)]);
    expect(fs.statSync(file).mode & 0o7777).toBe(0o644 & ~process.umask());
  });

  it('a file whose length is right and whose bytes are not is no cache', () => {
    writeCodeCache(file, () => DATA);
    const good = fs.readFileSync(file);
    const zeroed = Buffer.from(good);
    zeroed.fill(0, 2500);
    const flipped = Buffer.from(good);
    flipped[1234] ^= 1;
    for (const bad of [zeroed, flipped, good.subarray(0, 3000), Buffer.alloc(0), Buffer.alloc(3)]) {
      fs.writeFileSync(file, bad);
      expect(readCodeCache(file)).toBeUndefined();
    }
  });

  it('a FIFO, a device, a directory or nothing at the path is no cache, and nothing waits', () => {
    expect(readCodeCache(file)).toBeUndefined();
    execFileSync('mkfifo', [file]);
    expect(readCodeCache(file)).toBeUndefined();
    fs.rmSync(file);
    fs.symlinkSync('/dev/zero', file);
    expect(readCodeCache(file)).toBeUndefined();
    fs.rmSync(file);
    fs.mkdirSync(file);
    expect(readCodeCache(file)).toBeUndefined();
  });

  it('a link at the path is replaced, never written through', () => {
    const target = path.join(dir, 'elsewhere');
    fs.writeFileSync(target, 'not yours\n');
    fs.symlinkSync(target, file);
    writeCodeCache(file, () => DATA);
    expect(fs.readFileSync(target, 'utf8')).toBe('not yours\n');
    expect(fs.lstatSync(file).isFile()).toBe(true);
    expect(readCodeCache(file)?.equals(DATA)).toBe(true);
  });

  it('a temp name already taken (here a link) is left alone: nothing is made or written', () => {
    const target = path.join(dir, 'elsewhere');
    fs.writeFileSync(target, 'not yours\n');
    const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
    fs.symlinkSync(target, tmp);
    let made = 0;
    writeCodeCache(file, () => {
      made++;
      return DATA;
    });
    expect(made).toBe(0);
    expect(fs.readFileSync(target, 'utf8')).toBe('not yours\n');
    expect(fs.lstatSync(tmp).isSymbolicLink()).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('a directory at the path stays; the temp file is removed', () => {
    fs.mkdirSync(file);
    writeCodeCache(file, () => DATA);
    expect(fs.statSync(file).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual([path.basename(file)]);
  });

  it('a failure while making the cache leaves no temp file and no cache', () => {
    writeCodeCache(file, () => {
      throw new Error('boom');
    });
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
