/**
 * The shortcuts a fleet's plan takes (a name already in normal form, record fields taken as
 * tokens, a plain zone-file line read by a regular expression, one TTL look for many owners)
 * give what the general path gives, on awkward inputs.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createProvider } from '../../providers/zonefile.js';
import { parseZone } from '../../providers/zonefile-parse.js';
import { parseRdata, parseRdataFields } from '../../src/tlsa/presentation.js';
import { parseHost, parseHostInFull } from '../../src/tlsa/host.js';
import { normaliseName } from '../../src/tlsa/record.js';

const h = (s: string) => createHash('sha256').update(s).digest('hex');

/** normaliseName as it was before its shortcut: split, and a test per label. */
function slowName(name: string): string {
  let n = name.trim().toLowerCase();
  if (!n.endsWith('.')) n += '.';
  if (n === '.' || n.length > 254) throw new RangeError(`"${name}" is not a valid DNS name`);
  for (const label of n.slice(0, -1).split('.'))
    if (
      label.length === 0 ||
      label.length > 63 ||
      !/^[a-z0-9_*]([a-z0-9_-]*[a-z0-9])?$/.test(label)
    )
      throw new RangeError(`"${name}" is not a valid DNS name (label "${label}")`);
  return n;
}

const outcome = (f: () => unknown) => {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
};

describe('normaliseName: a name already in normal form', () => {
  it('gives what the label-by-label check gives, for awkward names', () => {
    const l63 = 'a'.repeat(63);
    const names = [
      'mx.example.org',
      'mx.example.org.',
      'MX.Example.ORG',
      'Mx.example.org.',
      '_25._tcp.mx.example.org.',
      '_25._TCP.mx.example.org',
      '*.example.org',
      'a*.example.org',
      '*a.example.org',
      '-a.example.org',
      'a-.example.org',
      '_.example',
      'a_b.c',
      'a',
      '.',
      '',
      ' mx.example.org ',
      'mx.example.org\n',
      'mx..example.org',
      '.mx.example.org',
      'mx.example.org..',
      'sp ace.example',
      'bücher.example',
      `${l63}.org`,
      `${l63}a.org`,
      // 253 and 254 characters with the dot, and one more.
      `${Array(4).fill(l63).join('.')}`.slice(0, 253),
      `${`${Array(4).fill(l63).join('.')}`.slice(0, 253)}.`,
      `${`${Array(4).fill(l63).join('.')}`.slice(0, 252)}.`,
      `${Array(4).fill(l63).join('.')}`.slice(0, 254),
      `${Array(4).fill(l63).join('.')}.`,
    ];
    for (const n of names) {
      // Twice in a row: the last answer is remembered.
      expect(
        outcome(() => normaliseName(n)),
        JSON.stringify(n),
      ).toEqual(outcome(() => slowName(n)));
      expect(
        outcome(() => normaliseName(n)),
        JSON.stringify(n),
      ).toEqual(outcome(() => slowName(n)));
    }
  });
});

describe('parseRdataFields: record fields as tokens', () => {
  it('gives what parseRdata gives on the fields joined by blanks', () => {
    const x = h('x');
    const cases: string[][] = [
      ['3', '1', '1', x],
      ['DANE-EE', 'spki', 'SHA2-256', x.toUpperCase()],
      ['3', '1', '1', x.slice(0, 20), x.slice(20)],
      ['2', '0', '2', `${x}${x}`],
      ['3', '1', '1'],
      ['3', '1', '1', 'zz'],
      ['4', '1', '1', x],
      ['3', '1', '1', `${x}\u00a0ab`],
      ['3\v', '1', '1', x],
      ['3', '', '1', '1', x],
      ['\\#', '35', `030101${x}`],
      ['\\#', '3', '030101'],
    ];
    for (const f of cases)
      expect(
        outcome(() => parseRdataFields(f)),
        JSON.stringify(f),
      ).toEqual(outcome(() => parseRdata(f.join(' '))));
  });
});

describe('parseZone: a line without parentheses, quotes or escapes', () => {
  it('reads as the character loop reads it (the same lines forced through it)', () => {
    const text = [
      '$ORIGIN example.org.',
      '$TTL 300',
      '@ IN SOA ns1 host 2024010101 3600 600 86400 300',
      `_25._tcp.mx 3600 IN TLSA 3 1 1 ${h('a')} ; tlsa:managed`,
      `\tIN TLSA 2 1 1 ${h('b')};tlsa:managed`,
      `_25._TCP.MX.example.org.\t600\tTLSA\t3 1 1 ${h('c')}\r`,
      `_443._tcp.www IN 1h TLSA 3 1 2 ${h('d')}${h('d')} ;; a note`,
      `_443._tcp.www 120 IN TLSA 3 1 1 ${h('e').slice(0, 30)} ${h('e').slice(30)}`,
      '   ',
      '; only a comment',
      `_25._tcp.mx2 IN TLSA ( 3 1 1`,
      `  ${h('f')} ; inside the parentheses`,
      '  )',
      `www IN A 192.0.2.1 ; tlsa:managed`,
      `_25._tcp.mx3 IN TXT hello`,
      `$INCLUDE other.zone sub`,
      `_25._tcp.mx4 TYPE52 3 1 1 ${h('g')}`,
      // A ';' in quotes or escaped is no comment: these lines go through the loop.
      `_25._tcp.mx5 IN TXT "a;b" ; tlsa:managed`,
      `_25._tcp.mx6 IN TXT a\\;b`,
    ];
    // An empty pair of parentheses before the comment sends a line down the character loop
    // without changing what it says (not inside the parentheses of lines 11-13; lines with a
    // quote or an escape go through it anyway).
    const forced = text.map((l, i) => {
      if ((i >= 10 && i <= 12) || /["\\]/.test(l)) return l;
      const cr = l.endsWith('\r') ? '\r' : '';
      const body = cr ? l.slice(0, -1) : l;
      const semi = body.indexOf(';');
      return semi < 0 ? `${body} ( )${cr}` : `${body.slice(0, semi)} ( )${body.slice(semi)}${cr}`;
    });
    const withoutLines = (t: string[]) =>
      parseZone(t.join('\n'), 'z.zone').map(({ lines: _, ...rest }) => rest);
    const fast = withoutLines(text);
    expect(fast).toEqual(withoutLines(forced));
    expect(fast.filter((e) => e.record)).toHaveLength(7);
    expect(fast.filter((e) => e.managed)).toHaveLength(3);
    expect(fast.find((e) => e.line === 11)?.record?.data).toBe(h('f'));
    expect(fast.filter((e) => e.txt).map((e) => e.txt)).toEqual(['hello', 'a;b', 'a;b']);
  });

  it('names the same line in its errors', () => {
    for (const bad of [
      `_25._tcp.mx IN TLSA 3 1 1 zz`,
      `_25._tcp.mx IN TLSA 3 1`,
      `_25._tcp.mx IN 3600`,
      `bad..name IN TLSA 3 1 1 ${h('a')}`,
      ` IN TLSA 3 1 1 ${h('a')}`,
    ]) {
      const text = `$ORIGIN example.org.\n${bad}\n`;
      const forced = `$ORIGIN example.org.\n${bad} ( )\n`;
      expect(
        outcome(() => parseZone(text, 'z')),
        bad,
      ).toEqual(outcome(() => parseZone(forced, 'z')));
      expect(outcome(() => parseZone(text, 'z')).error, bad).toBeDefined();
    }
  });
});

describe('zonefile effectiveTtlMany', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('answers as effectiveTtl does, owner by owner, in the order asked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-many-'));
    dirs.push(dir);
    const path = join(dir, 'zone.db');
    writeFileSync(
      path,
      [
        '$ORIGIN example.org.',
        '$TTL 300',
        '@ IN SOA ns1 host 1 3600 600 86400 300',
        `_25._tcp.mx 7200 IN TLSA 3 1 1 ${h('a')}`,
        `_25._tcp.mx 900 IN TLSA 3 1 1 ${h('b')}`,
        `_25._tcp.mx2 99999 IN TLSA 3 1 1 ${h('c')} ; tlsa:managed`,
        `_25._tcp.mx3 3000000000 IN TLSA 3 1 1 ${h('d')}`,
        '',
      ].join('\n'),
    );
    const p = createProvider(
      { path },
      { instance: 't', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
    );
    const asks = [
      { owner: '_25._tcp.mx.example.org.', ttl: 3600 },
      { owner: '_25._TCP.MX.example.org', ttl: 3600 },
      { owner: '_25._tcp.mx.example.org.', ttl: 86400 },
      { owner: '_25._tcp.mx2.example.org.', ttl: 60 },
      { owner: '_25._tcp.mx3.example.org', ttl: 60 },
      { owner: '_443._tcp.none.example.org.', ttl: 60 },
    ];
    const one = [];
    for (const a of asks) one.push(await p.effectiveTtl!(a.owner, a.ttl));
    expect(await p.effectiveTtlMany!(asks)).toEqual(one);
    expect(one.map((x) => (typeof x === 'number' ? x : x.ttl))).toEqual([
      7200, 7200, 86400, 60, 604800, 60,
    ]);
  });
});

describe('parseHost: a plain lower-case host name', () => {
  it('gives what every conversion and check gives, for awkward names', () => {
    const l63 = 'a'.repeat(63);
    const labels = [
      'mx',
      'a',
      '0',
      '1',
      '9a',
      'a9',
      'a-b',
      'a--b',
      '-a',
      'a-',
      'xn--',
      'xn--bcher-kva',
      'xn--a',
      'xn-a',
      'ab--cd',
      '0x',
      '0xff',
      '0x1g',
      '0xg',
      '123',
      '1e5',
      '08',
      'localhost',
      l63,
      `${l63}a`,
      'A',
      'Mx',
      '_25',
      '*',
      '',
      'b\u00fccher',
      'a b',
    ];
    const names = new Set<string>();
    for (const a of labels)
      for (const b of labels)
        for (const tail of ['', '.', '.example.org', '.example.org.', '.org'])
          names.add(`${a}.${b}${tail}`);
    for (const a of labels) names.add(a).add(`${a}.`);
    const long = Array(4).fill(l63).join('.');
    for (const n of [long, long.slice(0, 253), long.slice(0, 254), `${long.slice(0, 253)}.`])
      names.add(n);
    for (const n of ['mx.localhost', 'mx.localhost.', ' mx.example.org', 'mx.example.org\n', '..'])
      names.add(n);
    let plain = 0;
    for (const n of names) {
      const fast = outcome(() => parseHost(n));
      expect(fast, JSON.stringify(n)).toEqual(outcome(() => parseHostInFull(n)));
      if ('ok' in fast) plain++;
    }
    expect(plain).toBeGreaterThan(100);
  });
});
