/** Staged install through the built CLI: hostile layouts in the install directory (exit 2, the
 *  path named, nothing changed anywhere), services sharing one installed copy (one install, one
 *  reload), a clash between two services (exit 2 at load), and the key's owner, group and mode. */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';
import {
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  requireBuiltCli,
  runCli,
  show,
  snapshot,
  type TestPki,
} from '../helpers/cli.js';

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-install-cli-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

interface Svc {
  port: number;
  lineages: string[];
  install?: string[];
}

let n = 0;
/** A config dir with lineages le/live/<name> and services as given (zonefile provider, no DNS
 *  or TLS checks: a record is live 2×TTL after it was written). */
function setup() {
  const dir = join(root, `c${++n}`);
  mkdirSync(dir, { recursive: true });
  const lineage = (family: 'rsa' | 'ecdsa', name = 'mx.example.org', le = join(dir, 'le')) => {
    const leaf = leafFor(pki, family, { outDir: dir });
    return { path: lineageFor(pki, name, family, leaf, undefined, le), leaf };
  };
  const config = join(dir, 'config.yaml');
  const write = (ttl: number, services: Record<string, Svc>) =>
    writeFileSync(
      config,
      [
        'state_dir: state',
        `ttl: ${ttl}`,
        'verify:',
        '  resolver: "127.0.0.1:9"',
        '  propagation: false',
        '  probe: false',
        'providers:',
        '  local:',
        '    type: zonefile',
        '    path: zone.db',
        '    create: true',
        'services:',
        ...Object.entries(services).flatMap(([name, s]) => [
          `  ${name}:`,
          '    host: mx.example.org',
          `    ports: [${s.port}]`,
          '    provider: local',
          '    issuers: none',
          '    certificates:',
          ...s.lineages.map((l) => `      - lineage: ${l}`),
          ...(s.install ? ['    install:', ...s.install.map((l) => `      ${l}`)] : []),
        ]),
        '',
      ].join('\n'),
    );
  const tlsa = (...args: string[]) => runCli(['--config', config, ...args], { cwd: dir });
  const zone = () =>
    existsSync(join(dir, 'zone.db')) ? readFileSync(join(dir, 'zone.db'), 'utf8') : '';
  const reloads = () =>
    existsSync(join(dir, 'reloads.log'))
      ? readFileSync(join(dir, 'reloads.log'), 'utf8').split('\n').filter(Boolean)
      : [];
  return { dir, lineage, write, tlsa, zone, reloads };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const INSTALL = ['dir: installed', 'reload: "echo reload >> reloads.log"'];

/** Someone else's directory a link in the install dir may point to. */
function victim(dir: string): string {
  const v = join(dir, 'victim');
  mkdirSync(join(v, 'sub'), { recursive: true });
  writeFileSync(join(v, 'precious.conf'), 'do not delete\n');
  writeFileSync(join(v, 'sub', 'data'), 'nor this\n');
  return v;
}

describe('staged install: a layout tlsa did not make is refused (exit 2, path named, nothing changed)', () => {
  for (const link of ['releases', 'current', 'previous'] as const) {
    it(`DIR/NAME/${link} is a symlink to a directory with files`, () => {
      const s = setup();
      const { path } = s.lineage('ecdsa');
      s.write(3600, { mx: { port: 25, lineages: [path], install: INSTALL } });
      const v = victim(s.dir);
      const name = join(s.dir, 'installed', 'mx.example.org');
      mkdirSync(name, { recursive: true });
      symlinkSync(v, join(name, link));
      const before = snapshot(v);
      const r = s.tlsa('publish');
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain(`${join(name, link)}:`);
      expect(r.stderr).toMatch(
        link === 'releases'
          ? /is a symlink \(to .*victim\)/
          : /points to .*victim, which is not a release tlsa made/,
      );
      expect(snapshot(v)).toEqual(before);
      expect(readdirSync(v).sort()).toEqual(['precious.conf', 'sub']);
      expect(readlinkSync(join(name, link))).toBe(v);
      expect(s.zone()).toBe(''); // refused before any DNS change
      expect(s.reloads()).toEqual([]);
    });
  }

  it('releases swapped for a symlink after installs: the next install neither writes nor prunes there', async () => {
    const s = setup();
    const { path } = s.lineage('ecdsa');
    s.write(1, { mx: { port: 25, lineages: [path], install: INSTALL } });
    expect(s.tlsa('publish').code).toBe(0);
    const name = join(s.dir, 'installed', 'mx.example.org');
    const v = victim(s.dir);
    execFileSync('mv', [join(name, 'releases'), join(s.dir, 'old-releases')]);
    symlinkSync(v, join(name, 'releases'));
    s.lineage('ecdsa'); // renewal, new key
    const before = snapshot(v);
    const r = s.tlsa('publish');
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain(join(name, 'releases'));
    expect(snapshot(v)).toEqual(before);
  });
});

describe('staged install: services sharing one chain', () => {
  it('two services, one lineage, one install dir: one install and one reload per run; previous is the real previous release', async () => {
    const s = setup();
    const { path, leaf } = s.lineage('ecdsa');
    s.write(1, {
      smtp: { port: 25, lineages: [path], install: INSTALL },
      submissions: { port: 465, lineages: [path], install: INSTALL },
    });
    const first = s.tlsa('publish');
    expect(first.code, show(first)).toBe(0);
    const releases = join(s.dir, 'installed', 'mx.example.org', 'releases');
    expect(readdirSync(releases)).toHaveLength(1);
    expect(s.reloads()).toEqual(['reload']);
    const r1 = readlinkSync(join(s.dir, 'installed', 'mx.example.org', 'current'));

    const next = s.lineage('ecdsa');
    const staged = s.tlsa('publish');
    expect(staged.code, show(staged)).toBe(0);
    await sleep(2200); // 2×TTL (the shared issuer's 2 1 1 may be live already: installed here or above)
    const second = s.tlsa('publish');
    expect(second.code, show(second)).toBe(0);
    expect(`${staged.stdout}${second.stdout}`).toMatch(/installed .* for smtp, submissions/);
    expect(s.reloads()).toEqual(['reload', 'reload']);
    expect(readdirSync(releases)).toHaveLength(2);
    expect(readlinkSync(join(s.dir, 'installed', 'mx.example.org', 'previous'))).toBe(r1);
    expect(
      readFileSync(join(s.dir, 'installed', 'mx.example.org', 'previous', 'cert.pem'), 'utf8'),
    ).toBe(`${leaf.certPem.trimEnd()}\n`);
    expect(
      readFileSync(join(s.dir, 'installed', 'mx.example.org', 'current', 'cert.pem'), 'utf8'),
    ).toBe(`${next.leaf.certPem.trimEnd()}\n`);
    const rdata = managedRdata(s.zone());
    expect(rdata).toContain(`3 1 1 ${opensslSpkiSha256(next.leaf.certPath)}`);
  });

  it('one service with an RSA and an ECDSA lineage installed in one run: one reload', () => {
    const s = setup();
    const rsa = s.lineage('rsa', 'mx-rsa');
    const ec = s.lineage('ecdsa', 'mx-ecdsa');
    s.write(3600, { mx: { port: 25, lineages: [rsa.path, ec.path], install: INSTALL } });
    const r = s.tlsa('publish');
    expect(r.code, show(r)).toBe(0);
    expect(existsSync(join(s.dir, 'installed', 'mx-rsa', 'current', 'combined.pem'))).toBe(true);
    expect(existsSync(join(s.dir, 'installed', 'mx-ecdsa', 'current', 'combined.pem'))).toBe(true);
    expect(s.reloads()).toEqual(['reload']);
  });

  it('a shared copy is not installed while one of its services waits (another port added later)', async () => {
    const s = setup();
    const { path } = s.lineage('ecdsa');
    s.write(1, { smtp: { port: 25, lineages: [path], install: INSTALL } });
    expect(s.tlsa('publish').code).toBe(0);
    await sleep(2200);
    // A renewal and a second service on another port, whose new owner has no record yet.
    const next = s.lineage('ecdsa');
    s.write(1, {
      smtp: { port: 25, lineages: [path], install: INSTALL },
      submissions: { port: 465, lineages: [path], install: INSTALL },
    });
    // smtp's chain matches its live 2 1 1, but submissions' records are new: the copy both
    // read stays as it is.
    const added = s.tlsa('publish');
    expect(added.code, show(added)).toBe(0);
    expect(added.stdout).toMatch(
      /staged .* for smtp: waits for its installed copy mx\.example\.org is shared with submissions \(records not live yet\)/,
    );
    expect(
      readFileSync(join(s.dir, 'installed', 'mx.example.org', 'current', 'cert.pem'), 'utf8'),
    ).not.toBe(`${next.leaf.certPem.trimEnd()}\n`);
    expect(s.reloads()).toEqual(['reload']);
    await sleep(2200);
    const done = s.tlsa('publish');
    expect(done.code, show(done)).toBe(0);
    expect(
      readFileSync(join(s.dir, 'installed', 'mx.example.org', 'current', 'cert.pem'), 'utf8'),
    ).toBe(`${next.leaf.certPem.trimEnd()}\n`);
  });

  it('two services installing different chains under one name: exit 2 at load naming both, nothing changed', () => {
    const s = setup();
    const a = s.lineage('ecdsa', 'mx.example.org', join(s.dir, 'le-a'));
    const b = s.lineage('ecdsa', 'mx.example.org', join(s.dir, 'le-b'));
    s.write(3600, {
      smtp: { port: 25, lineages: [a.path], install: INSTALL },
      submissions: { port: 465, lineages: [b.path], install: INSTALL },
    });
    for (const cmd of ['publish', 'plan']) {
      const r = s.tlsa(cmd);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(
        /config\.yaml:\d+: services\.submissions\.certificates\[0\]: services "smtp" and "submissions" both install a chain as .*installed\/mx\.example\.org, from different sources/,
      );
    }
    expect(s.zone()).toBe('');
    expect(existsSync(join(s.dir, 'installed'))).toBe(false);
    expect(s.reloads()).toEqual([]);
  });

  it('sharing one copy with different key owner or mode: exit 2 at load', () => {
    const s = setup();
    const { path } = s.lineage('ecdsa');
    s.write(3600, {
      smtp: { port: 25, lineages: [path], install: INSTALL },
      submissions: { port: 465, lineages: [path], install: [...INSTALL, 'mode: "0640"'] },
    });
    const r = s.tlsa('publish');
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(
      /services "smtp" and "submissions" share the installed copy .* different install\.owner, install\.group or install\.mode/,
    );
    expect(s.zone()).toBe('');
  });
});

describe('staged install: owner, group and mode of the key copies', () => {
  const asRoot = process.getuid?.() === 0;
  const idOf = (db: 'passwd' | 'group', name: string) =>
    Number(execFileSync('getent', [db, name], { encoding: 'utf8' }).split(':')[2]);

  it.skipIf(!asRoot)(
    'install.owner/group/mode are applied to privkey.pem and combined.pem; certificates stay public',
    () => {
      const s = setup();
      const { path } = s.lineage('ecdsa');
      s.write(3600, {
        mx: {
          port: 25,
          lineages: [path],
          install: [...INSTALL, 'owner: nobody', 'group: nogroup', 'mode: "0640"'],
        },
      });
      const r = s.tlsa('publish');
      expect(r.code, show(r)).toBe(0);
      const cur = join(s.dir, 'installed', 'mx.example.org', 'current');
      for (const f of ['privkey.pem', 'combined.pem']) {
        const st = statSync(join(cur, f));
        expect([st.uid, st.gid, st.mode & 0o7777], f).toEqual([
          idOf('passwd', 'nobody'),
          idOf('group', 'nogroup'),
          0o640,
        ]);
      }
      for (const f of ['fullchain.pem', 'cert.pem', 'chain.pem']) {
        const st = statSync(join(cur, f));
        expect([st.uid, st.mode & 0o7777], f).toEqual([0, 0o644]);
      }
      // The server's user can read it (directories on the way are 0755 or made so here).
      for (const d of [root, s.dir]) chmodSync(d, 0o755);
      const read = execFileSync(
        'setpriv',
        [
          '--reuid=nobody',
          '--regid=nogroup',
          '--clear-groups',
          'head',
          '-c',
          '27',
          join(cur, 'privkey.pem'),
        ],
        { encoding: 'utf8' },
      );
      expect(read).toBe('-----BEGIN PRIVATE KEY-----');
    },
  );

  it('defaults: the key copies are 0600, owned by the user tlsa runs as', () => {
    const s = setup();
    const { path } = s.lineage('ecdsa');
    s.write(3600, { mx: { port: 25, lineages: [path], install: INSTALL } });
    expect(s.tlsa('publish').code).toBe(0);
    const st = statSync(join(s.dir, 'installed', 'mx.example.org', 'current', 'privkey.pem'));
    expect([st.uid, st.mode & 0o7777]).toEqual([process.getuid!(), 0o600]);
  });

  it('an unknown user or group, an unquoted mode, a mode readable by others: exit 2 at load with the line, nothing changed', () => {
    const cases: [string[], RegExp][] = [
      [
        ['owner: no-such-user-tlsa'],
        /config\.yaml:\d+: services\.mx\.install\.owner: no user "no-such-user-tlsa" on this system/,
      ],
      [
        ['group: no-such-group-tlsa'],
        /config\.yaml:\d+: services\.mx\.install\.group: no group "no-such-group-tlsa" on this system/,
      ],
      [['mode: 0640'], /services\.mx\.install\.mode: write the mode in quotes, e\.g\. "0640"/],
      [['mode: "0644"'], /services\.mx\.install\.mode: .*nothing for others/],
    ];
    for (const [extra, message] of cases) {
      const s = setup();
      const { path } = s.lineage('ecdsa');
      s.write(3600, { mx: { port: 25, lineages: [path], install: [...INSTALL, ...extra] } });
      const r = s.tlsa('publish');
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(s.zone()).toBe('');
      expect(existsSync(join(s.dir, 'installed'))).toBe(false);
    }
  });
});

describe('without staged install: one reload per command', () => {
  it('the hook reloads once when an RSA and an ECDSA chain both match live records', async () => {
    const s = setup();
    const rsa = s.lineage('rsa', 'mx-rsa');
    const ec = s.lineage('ecdsa', 'mx-ecdsa');
    s.write(1, { mx: { port: 25, lineages: [rsa.path, ec.path] } });
    writeFileSync(
      join(s.dir, 'config.yaml'),
      readFileSync(join(s.dir, 'config.yaml'), 'utf8').replace(
        '    provider: local\n',
        '    provider: local\n    reload: "echo reload >> reloads.log"\n',
      ),
    );
    const hook = () =>
      runCli(['--config', join(s.dir, 'config.yaml'), 'hook', 'certbot'], {
        cwd: s.dir,
        env: { RENEWED_LINEAGE: ec.path },
      });
    expect(hook().code).toBe(1); // first issuance: nothing live yet, no reload
    expect(s.reloads()).toEqual([]);
    await sleep(2200); // 2×TTL: both chains' records are live
    const r = hook();
    expect(r.code, show(r)).toBe(0);
    expect(s.reloads()).toEqual(['reload']);
  });
});
