/** DNS-01 without a CA: where the values go, which servers lag, the wait (canned answers),
 *  the solver's record of pending values (written before the TXT, dropped after the removal,
 *  kept with a warning when the removal fails, removed by the next run), and the refusal of a
 *  provider without TXT. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DnsProvider, TxtRecords } from '../../providers/contract.js';
import { withTxt } from '../../src/acme/challenge-setup.js';
import { dns01Solver, removeLeftoverTxt } from '../../src/acme/dns01.js';
import { readPendingTxt } from '../../src/acme/dns01-leftovers.js';
import { challengeOwner, laggingServers, valuesByOwner } from '../../src/acme/dns01-values.js';
import { waitForTxt } from '../../src/acme/dns01-wait.js';
import { loadConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import type { AuthoritativeAnswer } from '../../src/verify/authoritative.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('tlsa-dns01-');
});
afterAll(() => removeTempDir(dir));

const answer = (server: string, address: string, values?: string[], error?: string) =>
  ({
    server,
    address,
    aa: true,
    rcode: 'NOERROR',
    ...(values ? { rdata: values.map((v) => JSON.stringify(v)) } : {}),
    ...(error ? { error } : {}),
  }) as AuthoritativeAnswer;

describe('DNS-01 values', () => {
  it('puts a wildcard and its base name at one owner, each value once', () => {
    expect(challengeOwner('Mx.Example.org')).toBe('_acme-challenge.mx.example.org.');
    expect(challengeOwner('*.example.org')).toBe('_acme-challenge.example.org.');
    const byOwner = valuesByOwner([
      { name: 'example.org', wildcard: false, token: 't1', keyAuthorization: 'A' },
      { name: 'example.org', wildcard: true, token: 't2', keyAuthorization: 'B' },
      { name: 'mx.example.org', wildcard: false, token: 't3', keyAuthorization: 'C' },
      { name: 'mx.example.org', wildcard: false, token: 't3', keyAuthorization: 'C' },
    ]);
    expect([...byOwner]).toEqual([
      ['_acme-challenge.example.org.', ['A', 'B']],
      ['_acme-challenge.mx.example.org.', ['C']],
    ]);
  });

  it('names each server address that lacks a value or did not answer, case-exact', () => {
    expect(
      laggingServers(
        [
          answer('ns1.example.org.', '192.0.2.1', ['A', 'B', 'v=spf1 -all']),
          answer('ns2.example.org.', '192.0.2.2', ['A', 'b']),
          answer('ns3.example.org.', '192.0.2.3', undefined, 'timeout'),
        ],
        ['A', 'B'],
      ),
    ).toEqual([
      'ns2.example.org. (192.0.2.2) lacks 1 of 2 value(s)',
      'ns3.example.org. (192.0.2.3): timeout',
    ]);
    expect(laggingServers([], ['A'])).toEqual(['no authoritative server found']);
  });
});

describe('waitForTxt', () => {
  const opts = { who: 'acme(mx)', resolver: { host: '127.0.0.1', port: 9 }, port: 53 };

  it('resolves once every server serves every value', async () => {
    let round = 0;
    const lines: string[] = [];
    await waitForTxt(new Map([['_acme-challenge.mx.example.org.', ['A']]]), {
      ...opts,
      timeoutMs: 5000,
      intervalMs: 10,
      progress: (l) => lines.push(l),
      lookup: async () => {
        round++;
        return [
          answer('ns1.example.org.', '192.0.2.1', ['A']),
          answer('ns2.example.org.', '192.0.2.2', round < 3 ? [] : ['A']),
        ];
      },
    });
    expect(round).toBe(3);
    // One line at most per second: the first round's.
    expect(lines).toEqual([
      'waiting for the authoritative servers to serve the DNS-01 TXT records: _acme-challenge.mx.example.org. ns2.example.org. (192.0.2.2) lacks 1 of 1 value(s): 0 s of 5 s',
    ]);
  });

  it('times out with a provider error (exit 3) naming the servers that lack the value', async () => {
    const lines: string[] = [];
    const started = Date.now();
    const err = await waitForTxt(new Map([['_acme-challenge.mx.example.org.', ['A']]]), {
      ...opts,
      timeoutMs: 2300,
      intervalMs: 50,
      progress: (l) => lines.push(l),
      lookup: async () => [
        answer('ns1.example.org.', '192.0.2.1', ['A']),
        answer('ns2.example.org.', '192.0.2.2', []),
      ],
    }).then(
      () => undefined,
      (e: unknown) => e as Error & { exitCode?: number },
    );
    expect(err?.exitCode).toBe(3);
    expect(err?.message).toMatch(
      /^acme\(mx\): the DNS-01 TXT records are not on every authoritative server after 2 s: _acme-challenge\.mx\.example\.org\. ns2\.example\.org\. \(192\.0\.2\.2\) lacks 1 of 1 value\(s\)/,
    );
    expect(err?.message).not.toMatch(/ns1/);
    // About 46 rounds, at most one line a second.
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThanOrEqual(1 + Math.ceil((Date.now() - started) / 1000));
  });
});

/** A provider whose TXT records live in a map; `failRemove` makes removals fail. */
function fakeProvider(opts: { failRemove?: boolean; onAdd?: () => void } = {}) {
  const store = new Map<string, string[]>();
  const calls: string[] = [];
  const txt: TxtRecords = {
    async list(owner) {
      return store.get(owner) ?? [];
    },
    async add(owner, values) {
      opts.onAdd?.();
      calls.push(`add ${owner} ${values.join(',')}`);
      store.set(owner, [...new Set([...(store.get(owner) ?? []), ...values])]);
    },
    async remove(owner, values) {
      calls.push(`remove ${owner} ${values.join(',')}`);
      if (opts.failRemove) throw new Error('server said no');
      store.set(
        owner,
        (store.get(owner) ?? []).filter((v) => !values.includes(v)),
      );
    },
    async flush() {
      calls.push('flush');
    },
  };
  const provider = { name: 'fake(x)', list: async () => [], apply: async () => {}, txt };
  return { provider, store, calls };
}

describe('dns01Solver', () => {
  const setup = (file: string, provider: DnsProvider & { txt: TxtRecords }, lines: string[]) => ({
    who: 'acme(mx)',
    providerName: 'dns',
    provider,
    ttl: 60,
    timeoutMs: 1000,
    propagation: false,
    resolver: { host: '127.0.0.1', port: 9 },
    authoritativePort: 53,
    pendingFile: file,
    progress: (l: string) => lines.push(l),
  });
  const answers = [
    { name: 'example.org', wildcard: false, token: 't1', keyAuthorization: 'A' },
    { name: 'example.org', wildcard: true, token: 't2', keyAuthorization: 'B' },
    { name: 'mx.example.org', wildcard: false, token: 't3', keyAuthorization: 'C' },
  ];

  it('records the values before writing them, writes all, flushes once, removes and forgets them', async () => {
    const file = path.join(dir, 'ok', 'pending.json');
    const seenAtAdd: number[] = [];
    const fake = fakeProvider({ onAdd: () => seenAtAdd.push(readPendingTxt(file).length) });
    const lines: string[] = [];
    const solver = dns01Solver(setup(file, fake.provider, lines));
    await solver.publish(answers);
    expect(seenAtAdd).toEqual([1, 2]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fake.calls).toEqual([
      'add _acme-challenge.example.org. A,B',
      'add _acme-challenge.mx.example.org. C',
      'flush',
    ]);
    await solver.close();
    await solver.close();
    expect(fake.store.get('_acme-challenge.example.org.')).toEqual([]);
    expect(fake.store.get('_acme-challenge.mx.example.org.')).toEqual([]);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('a failed removal is a warning, stays recorded, and the next run removes it', async () => {
    const file = path.join(dir, 'fail', 'pending.json');
    const broken = fakeProvider({ failRemove: true });
    const lines: string[] = [];
    const solver = dns01Solver(setup(file, broken.provider, lines));
    await solver.publish(answers);
    await solver.close(); // does not throw: the order's outcome is what the caller reports
    expect(lines.filter((l) => l.startsWith('warning: '))).toEqual([
      `warning: the DNS-01 TXT record(s) at _acme-challenge.example.org. could not be removed through provider "dns": server said no; they are recorded in ${file} and the next renew removes them`,
      `warning: the DNS-01 TXT record(s) at _acme-challenge.mx.example.org. could not be removed through provider "dns": server said no; they are recorded in ${file} and the next renew removes them`,
    ]);
    expect(readPendingTxt(file).map((p) => [p.provider, p.owner, p.values])).toEqual([
      ['dns', '_acme-challenge.example.org.', ['A', 'B']],
      ['dns', '_acme-challenge.mx.example.org.', ['C']],
    ]);

    // A provider no longer configured: kept, with a warning.
    const later: string[] = [];
    await removeLeftoverTxt(
      file,
      async () => undefined,
      (l) => later.push(l),
    );
    expect(later[0]).toMatch(
      /^warning: DNS-01 TXT record\(s\) at _acme-challenge\.example\.org\. from .* recorded in .* for provider "dns", which cannot remove them now/,
    );
    expect(readPendingTxt(file)).toHaveLength(2);

    // The provider works again: the next run removes them and forgets them.
    const healed = fakeProvider();
    healed.store.set('_acme-challenge.example.org.', ['A', 'B', 'foreign']);
    await removeLeftoverTxt(file, async (name) => (name === 'dns' ? healed.provider : undefined));
    expect(healed.store.get('_acme-challenge.example.org.')).toEqual(['foreign']);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('withTxt', () => {
  it('refuses a provider without TXT at the config line that chose it (exit 2)', () => {
    const file = path.join(dir, 'c.yaml');
    const write = (dns01: string) =>
      fs.writeFileSync(
        file,
        [
          'providers:',
          '  local: {type: zonefile, path: zone.db}',
          '  other: {type: zonefile, path: other.db}',
          'services:',
          '  mx:',
          '    host: mx.example.org',
          '    provider: local',
          '    certificates: [{lineage: live/mx}]',
          '    acme:',
          '      directory: letsencrypt',
          `      challenge: {dns01: ${dns01}}`,
          '',
        ].join('\n'),
      );
    const bare = { name: 'zonefile(local)', list: async () => [], apply: async () => {} };
    write('{}');
    let e = (() => {
      try {
        withTxt(loadConfig(file), 'mx', bare);
      } catch (err) {
        return err as InputError;
      }
    })();
    expect(e).toBeInstanceOf(InputError);
    expect(e!.exitCode).toBe(2);
    expect(e!.located).toMatch(
      /c\.yaml:7: services\.mx\.provider: provider "local" \(type zonefile\) cannot write TXT records, which DNS-01 needs/,
    );
    write('{provider: other}');
    e = (() => {
      try {
        withTxt(loadConfig(file), 'mx', bare);
      } catch (err) {
        return err as InputError;
      }
    })();
    expect(e!.located).toMatch(
      /c\.yaml:11: services\.mx\.acme\.challenge\.dns01\.provider: provider "other" \(type zonefile\)/,
    );
    const withIt = { ...bare, txt: fakeProvider().provider.txt };
    expect(withTxt(loadConfig(file), 'mx', withIt)).toBe(withIt);
  });
});
