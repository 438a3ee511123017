/** Staged install on real files: tlsa refuses every layout below DIR/NAME it did not make,
 *  changes nothing then, and prunes only releases it made. Runs as any user (ownership of the
 *  key copies is in test/integration/install.test.ts, as root). */
import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installRelease } from '../../src/engine/install.js';
import { checkInstallLayout } from '../../src/engine/install-layout.js';
import { InputError } from '../../src/errors.js';
import { snapshot } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const CHAIN =
  '-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nissuer\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n';

let tmp: string;
beforeAll(() => {
  tmp = makeTempDir('tlsa-install-');
});
afterAll(() => removeTempDir(tmp));

let n = 0;
/** An install dir and, beside it, a directory of someone else's files a link may point to. */
function world() {
  const base = join(tmp, `w${++n}`);
  const dir = join(base, 'installed');
  const victim = join(base, 'victim');
  mkdirSync(join(victim, 'sub'), { recursive: true });
  writeFileSync(join(victim, 'passwd'), 'root:x:0:0\n');
  writeFileSync(join(victim, 'sub', 'data'), 'keep me\n');
  writeFileSync(join(victim, 'fullchain.pem'), CHAIN);
  writeFileSync(join(victim, 'privkey.pem'), KEY);
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'mx');
  return { base, dir, victim, root, at: (d: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, d)) };
}

/** installRelease must throw an InputError naming `path`, and change nothing anywhere. */
function expectRefused(w: ReturnType<typeof world>, path: string, what: RegExp): void {
  const before = { install: snapshot(w.dir), victim: snapshot(w.victim), links: links(w.root) };
  let err: unknown;
  try {
    installRelease(w.dir, 'mx', CHAIN, KEY, w.at(50));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).file).toBe(path);
  expect((err as InputError).message).toMatch(what);
  expect(snapshot(w.victim)).toEqual(before.victim);
  expect(snapshot(w.dir)).toEqual(before.install);
  expect(links(w.root)).toEqual(before.links);
}

function links(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of ['current', 'previous', 'releases']) {
    try {
      if (lstatSync(join(root, l)).isSymbolicLink()) out[l] = readlinkSync(join(root, l));
    } catch {
      /* absent */
    }
  }
  return out;
}

describe('staged install: hostile layouts are refused, nothing changes', () => {
  it('releases is a symlink to a directory with files', () => {
    const w = world();
    mkdirSync(w.root);
    symlinkSync(w.victim, join(w.root, 'releases'));
    expectRefused(w, join(w.root, 'releases'), /is a symlink \(to .*victim\)/);
  });

  it('releases is a symlink, after a first install made current (the reported data loss)', () => {
    const w = world();
    installRelease(w.dir, 'mx', CHAIN, KEY, w.at(1));
    // Someone moves releases away and links it elsewhere; current still points into releases/.
    const releases = join(w.root, 'releases');
    renameSync(releases, join(w.base, 'old-releases'));
    symlinkSync(w.victim, releases);
    expectRefused(w, releases, /is a symlink/);
  });

  it('current and previous: symlinks to a directory with files, a FIFO, a regular file, a directory', () => {
    for (const link of ['current', 'previous'] as const) {
      const a = world();
      installRelease(a.dir, 'mx', CHAIN, KEY, a.at(1));
      const p = join(a.root, link);
      rmSync(p, { force: true });
      symlinkSync(a.victim, p);
      expectRefused(a, p, /points to .*victim, which is not a release tlsa made/);

      const b = world();
      installRelease(b.dir, 'mx', CHAIN, KEY, b.at(1));
      const q = join(b.root, link);
      rmSync(q, { force: true });
      symlinkSync('releases/../../victim', q);
      expectRefused(b, q, /points to releases\/\.\.\/\.\.\/victim/);

      const c = world();
      mkdirSync(c.root);
      mkfifo(join(c.root, link));
      expectRefused(c, join(c.root, link), /is a FIFO, expected a symlink tlsa made/);

      const d = world();
      mkdirSync(join(d.root, link), { recursive: true });
      writeFileSync(join(d.root, link, 'fullchain.pem'), CHAIN);
      expectRefused(d, join(d.root, link), /is a directory, expected a symlink/);
    }
  });

  it('DIR/NAME itself is a symlink, or a regular file; releases is a file or a FIFO', () => {
    const a = world();
    mkdirSync(join(a.victim, 'releases'));
    writeFileSync(join(a.victim, 'releases', 'precious'), 'x');
    symlinkSync(a.victim, a.root);
    expectRefused(a, a.root, /is a symlink .* expected a directory tlsa made/);

    const b = world();
    writeFileSync(b.root, 'not a directory');
    expectRefused(b, b.root, /is a regular file, expected a directory/);

    const c = world();
    mkdirSync(c.root);
    writeFileSync(join(c.root, 'releases'), '');
    expectRefused(c, join(c.root, 'releases'), /is a regular file, expected a directory/);

    const d = world();
    mkdirSync(d.root);
    mkfifo(join(d.root, 'releases'));
    expectRefused(d, join(d.root, 'releases'), /is a FIFO/);
  });

  it('in releases/: a release that is a symlink, a directory tlsa did not make, a file inside a release it does not write', () => {
    const a = world();
    installRelease(a.dir, 'mx', CHAIN, KEY, a.at(1));
    symlinkSync(a.victim, join(a.root, 'releases', '20250101T000000Z'));
    expectRefused(a, join(a.root, 'releases', '20250101T000000Z'), /is a symlink/);

    const b = world();
    installRelease(b.dir, 'mx', CHAIN, KEY, b.at(1));
    mkdirSync(join(b.root, 'releases', 'backup'));
    writeFileSync(join(b.root, 'releases', 'backup', 'privkey.pem'), KEY);
    expectRefused(b, join(b.root, 'releases', 'backup'), /not named like a release/);

    const c = world();
    installRelease(c.dir, 'mx', CHAIN, KEY, c.at(1));
    mkdirSync(join(c.root, 'releases', '20250101T000000Z'));
    writeFileSync(join(c.root, 'releases', '20250101T000000Z', 'privkey.pem'), KEY);
    expectRefused(
      c,
      join(c.root, 'releases', '20250101T000000Z'),
      /has no \.tlsa-release: not a release tlsa made/,
    );

    const d = world();
    const first = installRelease(d.dir, 'mx', CHAIN, KEY, d.at(1));
    writeFileSync(join(first, 'notes.txt'), 'mine');
    expectRefused(d, join(first, 'notes.txt'), /not a file tlsa writes/);

    const e = world();
    const one = installRelease(e.dir, 'mx', CHAIN, KEY, e.at(1));
    unlinkSync(join(one, 'chain.pem'));
    symlinkSync(join(e.victim, 'passwd'), join(one, 'chain.pem'));
    expectRefused(e, join(one, 'chain.pem'), /is a symlink .* expected a regular file/);
  });
});

describe('staged install: what tlsa made', () => {
  it('keeps current and previous, prunes older releases it made (with a marker, or legacy with exactly its files), and nothing else', () => {
    const w = world();
    const r1 = installRelease(w.dir, 'mx', CHAIN, KEY, w.at(1));
    expect(readFileSync(join(r1, '.tlsa-release'), 'utf8')).toMatch(/^tlsa release /);
    // A release made by an older tlsa (no marker): the five files, nothing else.
    const legacy = join(w.root, 'releases', '20250101T000000Z');
    mkdirSync(legacy);
    for (const f of ['fullchain.pem', 'cert.pem', 'chain.pem', 'privkey.pem', 'combined.pem'])
      writeFileSync(join(legacy, f), 'x');
    const r2 = installRelease(w.dir, 'mx', CHAIN, KEY, w.at(2));
    const r3 = installRelease(w.dir, 'mx', CHAIN, KEY, w.at(3));
    expect(readdirSync(join(w.root, 'releases')).sort()).toEqual(
      [r2, r3].map((r) => r.split('/').pop()).sort(),
    );
    expect(readlinkSync(join(w.root, 'current'))).toBe(`releases/${r3.split('/').pop()}`);
    expect(readlinkSync(join(w.root, 'previous'))).toBe(`releases/${r2.split('/').pop()}`);
    expect(checkInstallLayout(w.dir, 'mx').found).toHaveLength(2);
  });

  it('an empty release-named directory (a run stopped after mkdir) is recognised and pruned', () => {
    const w = world();
    installRelease(w.dir, 'mx', CHAIN, KEY, w.at(1));
    mkdirSync(join(w.root, 'releases', '20250101T000000Z'));
    installRelease(w.dir, 'mx', CHAIN, KEY, w.at(2));
    expect(readdirSync(join(w.root, 'releases'))).not.toContain('20250101T000000Z');
  });

  it('install.dir itself may be a symlink the admin made: tlsa installs where it points', () => {
    const w = world();
    const real = join(w.base, 'real-tls');
    mkdirSync(real);
    const linked = join(w.base, 'tls');
    symlinkSync(real, linked);
    installRelease(linked, 'mx', CHAIN, KEY, w.at(1));
    installRelease(linked, 'mx', CHAIN, KEY, w.at(2));
    expect(readFileSync(join(real, 'mx', 'current', 'fullchain.pem'), 'utf8')).toBe(CHAIN);
    expect(lstatSync(linked).isSymbolicLink()).toBe(true);
  });

  it('the key copies are 0600 by default, the certificates 0644, whatever the umask', () => {
    const w = world();
    const old = process.umask(0o077);
    try {
      const r = installRelease(w.dir, 'mx', CHAIN, KEY, w.at(1));
      expect(statSync(join(r, 'privkey.pem')).mode & 0o777).toBe(0o600);
      expect(statSync(join(r, 'combined.pem')).mode & 0o777).toBe(0o600);
      expect(statSync(join(r, 'fullchain.pem')).mode & 0o777).toBe(0o644);
      const r2 = installRelease(w.dir, 'mx', CHAIN, KEY, w.at(2), { mode: 0o640 });
      expect(statSync(join(r2, 'privkey.pem')).mode & 0o777).toBe(0o640);
      expect(statSync(join(r2, 'combined.pem')).mode & 0o777).toBe(0o640);
    } finally {
      process.umask(old);
    }
  });
});

const mkfifo = (p: string): void => {
  execFileSync('mkfifo', [p]);
};
