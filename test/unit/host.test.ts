/** src/tlsa/host.ts and where it is used: what a service's host may be, its A-label form, and
 *  whether a leaf's names cover it. Config errors point at the host's line. */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { desiredRecords } from '../../src/engine/desired.js';
import { InputError } from '../../src/errors.js';
import {
  bothForms,
  checkedCover,
  parseHostInFull,
  HostError,
  leafCoversHost,
  nameCoverageWarnings,
  nameCoverageGaps,
  coverageWarnings,
  parseHost,
  unicodeForm,
} from '../../src/tlsa/host.js';
import { makeCa, makeLeaf, makeTempDir, removeTempDir } from '../helpers/pki.js';
import { loadChain } from '../../src/certs/chain.js';

let dir: string;

beforeAll(() => {
  dir = makeTempDir('tlsa-host-');
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

function hostError(input: string): string {
  try {
    parseHost(input);
  } catch (e) {
    expect(e).toBeInstanceOf(HostError);
    return (e as Error).message;
  }
  throw new Error(`${input} accepted`);
}

describe('parseHost', () => {
  it('ASCII names: lower-cased, one trailing dot dropped', () => {
    expect(parseHost('MX.Example.ORG.')).toEqual({
      ascii: 'mx.example.org',
      unicode: 'mx.example.org',
    });
    expect(parseHost(' mx.example.org ')).toEqual({
      ascii: 'mx.example.org',
      unicode: 'mx.example.org',
    });
  });

  it('a Unicode name becomes its A-label form, and keeps its Unicode form for display', () => {
    expect(parseHost('Bücher.example.org')).toEqual({
      ascii: 'xn--bcher-kva.example.org',
      unicode: 'bücher.example.org',
    });
    expect(parseHost('mail.日本.jp.')).toEqual({
      ascii: 'mail.xn--wgv71a.jp',
      unicode: 'mail.日本.jp',
    });
    expect(parseHost('xn--bcher-kva.example.org')).toEqual({
      ascii: 'xn--bcher-kva.example.org',
      unicode: 'bücher.example.org',
    });
  });

  it.each([
    ['192.0.2.1', /is an IP address/],
    ['192.0.2.1.', /is an IP address/],
    ['2001:db8::25', /is an IP address/],
    ['[2001:db8::25]', /is an IP address/],
    ['0x7f.1', /is an IP address \(127\.0\.0\.1\)/],
    ['*.example.org', /is a wildcard/],
    ['mx.*.example.org', /is a wildcard/],
    ['localhost', /RFC 6761/],
    ['LOCALHOST.', /RFC 6761/],
    ['mail.localhost', /RFC 6761/],
    ['', /empty host name/],
    ['mx..example.org', /empty label/],
    ['mx.example.org..', /empty label/],
    ['mx_1.example.org', /label "mx_1" has "_"/],
    ['mx.example.org:25', /has ":"/],
    ['mx%41.example.org', /has "%"/],
    ['-mx.example.org', /label "-mx"/],
    ['mx-.example.org', /label "mx-"/],
    [`${'a'.repeat(64)}.example.org`, /at most 63/],
    ['xn--zz.example.org', /not a valid internationalised name/],
    ['mx.example.123', /last label is all digits/],
  ])('%s is refused', (input, why) => {
    expect(hostError(input)).toMatch(why);
  });

  it('the reasons say what DANE needs', () => {
    expect(hostError('192.0.2.1')).toMatch(/_PORT\._tcp\.HOST .*MX host name/);
    expect(hostError('*.example.org')).toMatch(/no client connects to "\*"/);
  });

  // A fleet's config names thousands of plain hosts: those skip the conversions, and must come
  // out exactly as through every check (or be refused by it, for the same reason).
  it('the quick way for plain names agrees with every check, on awkward names', () => {
    const labels = [
      'a',
      'mx',
      'mx0',
      '0',
      '00',
      '0x1f',
      '1e5',
      'xn--bcher-kva',
      'xn--zz',
      'ab--cd',
      '-a',
      'a-',
      'a-b',
      'localhost',
      'MX',
      'x'.repeat(63),
      'x'.repeat(64),
      '9',
      'com',
      'b\u00fc',
    ];
    const names = new Set<string>();
    let seed = 7;
    const pick = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return labels[seed % labels.length]!;
    };
    for (const a of labels) for (const b of labels) names.add(`${a}.${b}`);
    for (let i = 0; i < 3000; i++) {
      const n = 1 + (i % 6);
      names.add(Array.from({ length: n }, pick).join('.'));
    }
    names.add(`${'a'.repeat(63)}.`.repeat(4).slice(0, 253));
    names.add(`${`${'a'.repeat(63)}.`.repeat(4)}ab`);
    const outcome = (f: (s: string) => unknown, s: string) => {
      try {
        return f(s);
      } catch (e) {
        return (e as Error).message;
      }
    };
    for (const name of names)
      expect(outcome(parseHost, name), name).toEqual(outcome(parseHostInFull, name));
  });
});

describe('display forms', () => {
  it('owner names with A-labels are shown both ways; others as they are', () => {
    expect(unicodeForm('_25._tcp.xn--bcher-kva.example.org.')).toBe('_25._tcp.bücher.example.org.');
    expect(bothForms('_25._tcp.xn--bcher-kva.example.org.')).toBe(
      '_25._tcp.xn--bcher-kva.example.org. (_25._tcp.bücher.example.org.)',
    );
    expect(bothForms('_25._tcp.mx.example.org.')).toBe('_25._tcp.mx.example.org.');
  });
});

describe('leaf names and the host (RFC 7672 §3.2.3)', () => {
  let wildcard: X509Certificate;
  let idn: X509Certificate;
  let plain: ReturnType<typeof loadChain>;
  beforeAll(() => {
    const ca = makeCa(dir, { name: 'Host Test CA', key: 'p256' });
    wildcard = new X509Certificate(
      makeLeaf(dir, { ca, cn: 'example.org', sans: ['*.example.org', 'example.org'], key: 'p256' })
        .certPem,
    );
    idn = new X509Certificate(
      makeLeaf(dir, { ca, cn: 'xn--bcher-kva.example.org', key: 'p256' }).certPem,
    );
    const leaf = makeLeaf(dir, { ca, cn: 'mx.example.org', key: 'p256' });
    const full = path.join(dir, 'plain-fullchain.pem');
    fs.writeFileSync(full, leaf.certPem + ca.certPem);
    plain = loadChain({ kind: 'files', fullchain: full });
  });

  it('a wildcard covers exactly one whole leftmost label', () => {
    expect(leafCoversHost(wildcard, 'mx.example.org')).toBe(true);
    expect(leafCoversHost(wildcard, 'example.org')).toBe(true);
    expect(leafCoversHost(wildcard, 'a.mx.example.org')).toBe(false);
    expect(leafCoversHost(wildcard, 'mx.example.net')).toBe(false);
  });

  // Plain names and whole-label wildcards are matched without OpenSSL (thousands of services
  // share a leaf): the answer must be X509_check_host's, for every host.
  it('the quick name match agrees with OpenSSL on awkward names and hosts', () => {
    const ca = makeCa(dir, { name: 'Match Test CA', key: 'p256' });
    const sanSets = [
      ['mx.example.org'],
      ['MX.Example.ORG', 'b.example.org'],
      ['*.example.org', 'example.org'],
      ['*.org'],
      ['*.Example.Org'],
      ['*.xn--bcher-kva.example', 'xn--bcher-kva.example'],
      ['*.-a.example.org'],
      ['a*.example.org'],
      ['mx.*.example.org'],
      ['*.*.example.org'],
      ['a.example.org', '*.b.example.org', 'mx_1.example.org'],
      ['example.org.'],
    ];
    const hosts = [
      'mx.example.org',
      'example.org',
      'a.mx.example.org',
      'b.example.org',
      'x.b.example.org',
      'org',
      'a.org',
      'mx.example.org.',
      'xn--bcher-kva.example',
      'mx.xn--bcher-kva.example',
      'xn--bcher-kva.xn--bcher-kva.example',
      'ab.example.org',
      'a.-a.example.org',
      '-.example.org',
      'MX.example.org',
      '.example.org',
      'mx_1.example.org',
      'x.mx.example.org',
    ];
    for (const [i, sans] of sanSets.entries()) {
      const cert = new X509Certificate(
        makeLeaf(dir, { ca, cn: `match${i}.example.org`, sans, key: 'p256' }).certPem,
      );
      for (const host of hosts)
        expect(leafCoversHost(cert, host), `${sans.join(',')} / ${host}`).toBe(
          checkedCover(cert, host),
        );
    }
  });

  it('an IDN certificate names the A-label form', () => {
    expect(leafCoversHost(idn, parseHost('bücher.example.org').ascii)).toBe(true);
  });

  it('desiredRecords warns, for 2 x x records only, when the leaf does not cover the host', () => {
    const input = { name: 's', ports: [25], chains: [plain], cap: 12 };
    const twoAndThree = [
      { usage: 3, selector: 1, matching: 1 },
      { usage: 2, selector: 1, matching: 1 },
    ] as const;
    const other = desiredRecords(
      { ...input, host: 'other.example.org', records: [...twoAndThree] },
      new Date(),
    );
    expect(other.warnings).toHaveLength(1);
    expect(other.warnings[0]).toMatch(
      /DNS names mx\.example\.org\) does not cover the host other\.example\.org/,
    );
    expect(other.warnings[0]).toMatch(
      /DANE-TA \(2 x x\).*RFC 7672 §3\.2\.3.*DANE-EE \(3 x x\) records do not check names/,
    );
    expect(
      desiredRecords({ ...input, host: 'mx.example.org', records: [...twoAndThree] }, new Date())
        .warnings,
    ).toEqual([]);
    expect(
      desiredRecords({ ...input, host: 'other.example.org', records: [twoAndThree[0]] }, new Date())
        .warnings,
    ).toEqual([]);
    expect(nameCoverageWarnings('other.example.org', [plain, plain])).toHaveLength(1);
  });

  it('coverageWarnings: one warning per lineage and leaf, naming the count and the first ten hosts', () => {
    const one = nameCoverageGaps('other.example.org', [plain]);
    expect(one).toHaveLength(1);
    // One uncovered host keeps the single-host wording.
    expect(coverageWarnings(one)).toEqual(nameCoverageWarnings('other.example.org', [plain]));
    const hosts = Array.from({ length: 13 }, (_, i) => `h${i}.example.org`);
    const gaps = [...hosts, 'h0.example.org'].flatMap((h) => nameCoverageGaps(h, [plain]));
    const other = { ...plain, label: 'other-lineage' };
    gaps.push(...nameCoverageGaps('h1.example.org', [other]));
    const [shared, second, ...rest] = coverageWarnings(gaps);
    expect(rest).toEqual([]);
    expect(shared).toBe(
      `${plain.label}: the leaf certificate (DNS names mx.example.org) does not cover 13 hosts: ${hosts.slice(0, 10).join(', ')} and 3 more: ` +
        "with DANE-TA (2 x x) records a client checks the certificate's names (RFC 7672 §3.2.3), so it will refuse this chain unless the certificate names the mail domain it sends to; " +
        'DANE-EE (3 x x) records do not check names',
    );
    expect(second).toBe(nameCoverageWarnings('h1.example.org', [other])[0]);
    expect(second).toMatch(/^other-lineage: .*does not cover the host h1\.example\.org: /);
    // Up to ten hosts are all named, without a count of more.
    const ten = coverageWarnings(hosts.slice(0, 10).flatMap((h) => nameCoverageGaps(h, [plain])));
    expect(ten[0]).toContain(`does not cover 10 hosts: ${hosts.slice(0, 10).join(', ')}: with`);
  });

  it('desiredRecords leaves the gaps to a caller that summarises them', () => {
    const input = { name: 's', ports: [25], chains: [plain], cap: 12, host: 'other.example.org' };
    const specs = [{ usage: 2, selector: 1, matching: 1 }] as const;
    const apart = desiredRecords({ ...input, records: [...specs], summarise: true }, new Date());
    expect(apart.warnings).toEqual([]);
    expect(apart.coverageGaps).toEqual(nameCoverageGaps('other.example.org', [plain]));
    const alone = desiredRecords({ ...input, records: [...specs] }, new Date());
    expect(alone.warnings).toEqual(coverageWarnings(alone.coverageGaps));
  });
});

describe('loadConfig: the service host', () => {
  const config = (host: string) =>
    [
      'state_dir: state', // 1
      'providers:', // 2
      '  local:', // 3
      '    type: zonefile', // 4
      '    path: zone.db', // 5
      'services:', // 6
      '  mx:', // 7
      `    host: ${host}`, // 8
      '    provider: local', // 9
      '    certificates:', // 10
      '      - lineage: live/mx', // 11
      '',
    ].join('\n');
  let n = 0;
  const write = (host: string) => {
    const f = path.join(dir, `host-${++n}.yaml`);
    fs.writeFileSync(f, config(host));
    return f;
  };

  it.each([
    ['"192.0.2.25"', /is an IP address/],
    ['"[::1]"', /is an IP address/],
    ['"*.example.org"', /is a wildcard/],
    ['localhost', /RFC 6761/],
    ['mx_1.example.org', /label "mx_1"/],
  ])('host: %s is an error at its line', (host, why) => {
    const file = write(host);
    let err: InputError | undefined;
    try {
      loadConfig(file);
    } catch (e) {
      err = e as InputError;
    }
    expect(err).toBeInstanceOf(InputError);
    expect(err!.located.startsWith(`${file}:8: services.mx.host: `)).toBe(true);
    expect(err!.message).toMatch(why);
  });

  it('a Unicode host is stored in A-label form, a trailing dot dropped', () => {
    expect(loadConfig(write('Bücher.example.org.')).raw.services.mx!.host).toBe(
      'xn--bcher-kva.example.org',
    );
  });
});
