/**
 * Exit codes for network conditions (issue 9, point 3), through the built CLI: a validating
 * resolver that refuses (a closed loopback port) or swallows every query (a UDP socket that
 * never answers), and authoritative servers that do not answer (real Knot behind a real
 * unbound, with verify.authoritative_port pointing at a closed port).
 *
 * Each command must exit 3 naming the server and what to check, never "internal error", and
 * leave the state consistent: records it added are recorded as published, records it could not
 * check before removing them are kept.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';
import {
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  requireBuiltCli,
  runCli,
  show,
  stackLines,
  type CliResult,
  type TestPki,
} from '../helpers/cli.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import { freePort, labDescribe, stopAll } from '../lab/lab.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-neterr-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StateRecord {
  data: string;
  status: string;
  publishedAt?: string;
}
const stateOf = (dir: string): StateRecord[] =>
  (JSON.parse(readFileSync(join(dir, 'state', 'state.json'), 'utf8')) as { records: StateRecord[] })
    .records;

/** A network condition is exit 3 with the server named and the setting to check. */
function expectNetworkFailure(r: CliResult, server: string, setting: string): void {
  expect(r.code, show(r)).toBe(3);
  expect(r.stderr).toContain(server);
  expect(r.stderr).toContain(setting);
  expect(r.all).not.toMatch(/internal error/);
  expect(stackLines(r.all)).toEqual([]);
}

let n = 0;
/** One ECDSA service in a zone file, TTL 1, checked through `resolver`. */
function setup(
  resolver: string,
  o: { verify?: string[]; serviceExtra?: string[]; zone?: string; providerExtra?: string[] } = {},
) {
  const dir = join(root, `c${++n}`);
  mkdirSync(dir, { recursive: true });
  const le = join(dir, 'le');
  const first = leafFor(pki, 'ecdsa', { outDir: dir });
  const live = lineageFor(pki, 'mx.example.org', 'ecdsa', first, 1, le);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    configYaml({
      certificates: [`lineage: ${live}`],
      ttl: 1,
      verify: [
        `resolver: "${resolver}"`,
        'timeout_s: 2',
        ...(o.verify ?? ['propagation: false', 'probe: true']),
      ],
      serviceExtra: o.serviceExtra ?? [],
      providerExtra: o.providerExtra ?? [],
      ...(o.zone ? { zone: o.zone } : {}),
    }),
  );
  const zonePath = o.zone ?? join(dir, 'zone.db');
  return {
    dir,
    config,
    live,
    first,
    renew: () => {
      const next = leafFor(pki, 'ecdsa', { outDir: join(dir, `k${++n}`) });
      lineageFor(pki, 'mx.example.org', 'ecdsa', next, undefined, le);
      return next;
    },
    run: (args: string[], env: Record<string, string> = {}) =>
      runCli(['--config', config, ...args], { cwd: dir, env, timeout: 120_000 }),
    zone: () => (existsSync(zonePath) ? readFileSync(zonePath, 'utf8') : ''),
  };
}

/**
 * The reproduction: key A published; renewed to B (A starts its grace of 1 s); renewed to C
 * after the grace. The next run adds C and finds A due for removal, which needs the live probe,
 * which needs the resolver.
 */
async function withDueRecord(resolver: string) {
  const c = setup(resolver);
  expect(c.run(['publish']).code).toBe(0);
  const b = c.renew();
  const second = c.run(['publish']);
  expect(second.code, show(second)).toBe(0);
  await sleep(2100);
  const third = c.renew();
  const spki = {
    a: opensslSpkiSha256(c.first.certPath),
    b: opensslSpkiSha256(b.certPath),
    c: opensslSpkiSha256(third.certPath),
  };
  return { ...c, spki };
}

/** A port nothing listens on (UDP and TCP): queries to it are refused at once. */
let refusing: string;
beforeAll(async () => {
  refusing = `127.0.0.1:${await freePort()}`;
});

describe('a validating resolver that refuses connections', () => {
  const hint = 'verify.resolver';

  it('publish: exit 3 naming the resolver; the new record is recorded as published, the due one kept', async () => {
    const c = await withDueRecord(refusing);
    const r = c.run(['publish']);
    expectNetworkFailure(r, refusing, hint);
    const rdata = managedRdata(c.zone());
    expect(rdata).toContain(`3 1 1 ${c.spki.c}`);
    expect(rdata).toContain(`3 1 1 ${c.spki.a}`); // not removed: the probe could not check it
    const state = stateOf(c.dir);
    expect(state.find((x) => x.data === c.spki.c)).toMatchObject({ status: 'published' });
    expect(state.find((x) => x.data === c.spki.a)).toMatchObject({ status: 'retiring' });
    // Consistent: the next run has nothing to add and still keeps A.
    const again = c.run(['publish']);
    expectNetworkFailure(again, refusing, hint);
    expect(again.stdout).toMatch(/Published nothing/);
  });

  it('retire: exit 3 naming the resolver; nothing removed', async () => {
    const c = await withDueRecord(refusing);
    const before = c.zone();
    const r = c.run(['retire']);
    expectNetworkFailure(r, refusing, hint);
    expect(r.stdout).toMatch(/keeping .*the live probe could not check every address/);
    expect(c.zone()).toBe(before);
  });

  it('daemon --once: exit 3 naming the resolver, after publishing the new record', async () => {
    const c = await withDueRecord(refusing);
    const r = c.run(['daemon', '--once']);
    expectNetworkFailure(r, refusing, hint);
    expect(managedRdata(c.zone())).toContain(`3 1 1 ${c.spki.c}`);
    expect(stateOf(c.dir).find((x) => x.data === c.spki.c)).toMatchObject({ status: 'published' });
  });

  it('hook certbot: exit 3 (not 1, "served before live"), naming the resolver', async () => {
    const c = await withDueRecord(refusing);
    const r = c.run(['hook', 'certbot'], { RENEWED_LINEAGE: c.live });
    expectNetworkFailure(r, refusing, hint);
    expect(managedRdata(c.zone())).toContain(`3 1 1 ${c.spki.c}`);
    expect(stateOf(c.dir).find((x) => x.data === c.spki.c)).toMatchObject({ status: 'published' });
  });

  it('hook certbot with staged install: the chain stays staged, exit 3 because propagation cannot be checked', () => {
    const c = setup(refusing, {
      verify: ['propagation: true', 'probe: true'],
      serviceExtra: ['install:', '  dir: installed'],
    });
    expect(c.run(['publish']).code).toBe(0); // first install; nothing to check yet
    const next = c.renew();
    const r = c.run(['hook', 'certbot'], { RENEWED_LINEAGE: c.live });
    expectNetworkFailure(r, refusing, hint);
    expect(r.stdout).toMatch(/staged .* waits for its records to reach every authoritative server/);
    expect(readFileSync(join(c.dir, 'installed/mx.example.org/current/cert.pem'), 'utf8')).toBe(
      `${c.first.certPem.trimEnd()}\n`,
    );
    const added = stateOf(c.dir).find((x) => x.data === opensslSpkiSha256(next.certPath));
    expect(added).toMatchObject({ status: 'published' });
  });
});

describe('a resolver setting that is not an address', () => {
  it('is bad input at load time (file:line, exit 2), before any DNS change', () => {
    const c = setup('resolver.example.org');
    const r = c.run(['publish']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(
      /config\.yaml:\d+: verify\.resolver: the resolver is "system", "IP", "IP:PORT" or "\[IPv6\]:PORT"/,
    );
    expect(c.zone()).toBe('');
  });
});

describe('a validating resolver that never answers', () => {
  let silent: Socket;
  let address = '';
  beforeAll(async () => {
    silent = createSocket('udp4');
    silent.on('message', () => undefined); // swallowed: no answer, no ICMP
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
    address = `127.0.0.1:${silent.address().port}`;
  });
  afterAll(() => new Promise<void>((r) => silent.close(() => r())));

  it('check: finishes with the timeout message, printing progress while it waits', () => {
    const dir = join(root, 'check-silent');
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      configYaml({
        certificates: ['fullchain: none.pem'],
        verify: [`resolver: "${address}"`, 'timeout_s: 3'],
      }),
    );
    const r = runCli(['--config', config, 'check', 'mx.example.org:25'], {
      cwd: dir,
      timeout: 150_000,
    });
    expect(r.code, show(r)).toBe(1); // check: a failed check, the verdict monitoring acts on
    expect(r.stdout).toContain(`no answer from the resolver ${address} within 3 s`);
    expect(r.stdout).toMatch(/set verify\.resolver/);
    const progress = r.stderr
      .split('\n')
      .filter((l) => l.startsWith(`tlsa: waiting for the resolver ${address}: `));
    expect(progress.length, show(r)).toBeGreaterThanOrEqual(1);
    for (const l of progress) expect(l).toMatch(/: \d+ s of 3 s$/);
    expect(r.all).not.toMatch(/internal error/);
  }, 180_000);

  it('publish with a record due for removal: exit 3 naming the resolver, the record kept', async () => {
    const c = await withDueRecord(address);
    const r = c.run(['publish']);
    expectNetworkFailure(r, address, 'verify.resolver');
    expect(managedRdata(c.zone())).toContain(`3 1 1 ${c.spki.a}`);
    expect(r.stderr).toMatch(
      new RegExp(
        `tlsa: waiting for the validating resolver ${address.replace(/\./g, '\\.')}: \\d+ s of 2 s`,
      ),
    );
  }, 180_000);
});

labDescribe(
  'authoritative servers that do not answer',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
  ],
  () => {
    let knot: KnotServer;
    let unbound: UnboundServer;
    beforeAll(async () => {
      knot = await startKnot({
        zones: [{ name: 'example.org.', zoneFileText: minimalZone('example.org.'), dnssec: false }],
      });
      unbound = await startUnbound({
        stubs: [{ zone: 'example.org.', port: knot.port }],
        trustAnchors: [],
      });
    });
    afterAll(() => stopAll());

    const labSetup = (authPort: number) =>
      setup(`${unbound.host}:${unbound.port}`, {
        zone: knot.zoneFiles['example.org.']!,
        providerExtra: [`reload: ${JSON.stringify(knot.reloadCommand('example.org.'))}`],
        verify: ['propagation: true', 'probe: false', `authoritative_port: ${authPort}`],
      });

    it('daemon --once with verify.authoritative_port right: exit 0, the records seen on the server (the control)', () => {
      const c = labSetup(knot.port);
      const r = c.run(['daemon', '--once']);
      expect(r.code, show(r)).toBe(0);
      const state = stateOf(c.dir);
      expect(state.length).toBeGreaterThan(0);
      expect(
        state.every((x) => x.status === 'published' && !!(x as { seenAt?: string }).seenAt),
      ).toBe(true);
    });

    it('daemon --once with a closed authoritative port: exit 3 naming the server and verify.authoritative_port', async () => {
      const closed = await freePort();
      const c = labSetup(closed);
      const r = c.run(['daemon', '--once']);
      expectNetworkFailure(r, `ns.example.org. (127.0.0.1)`, 'verify.authoritative_port');
      expect(r.stderr).toContain(`port ${closed}`);
      // Published and recorded so; not seen on every server, so not on its way to live.
      const leaf = stateOf(c.dir).find((x) => x.data === opensslSpkiSha256(c.first.certPath));
      expect(leaf).toMatchObject({ status: 'published' });
      expect(leaf).not.toHaveProperty('seenAt');
    });
  },
);
