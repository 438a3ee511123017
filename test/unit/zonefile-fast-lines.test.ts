/** providers/zonefile-parse.ts: the one-line TLSA records read without tokens (the lines tlsa
 *  writes) give what the tokenizer gives. The reference is the same zone with "()" put into
 *  every line before its comment, which sends each line through the tokenizer's full loop
 *  without changing a token: records, TTLs, marks, owners and errors must be the same. */
import { describe, expect, it } from 'vitest';
import { type Entry, parseZone } from '../../providers/zonefile-parse.js';

function random(seed: number) {
  let s = seed;
  return <T>(items: readonly T[]): T => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return items[(s >>> 12) % items.length]!;
  };
}

const HEX = '5e99b1f75ccc89fae2ac99317c39445777827698896c15cba6607a573f1d6a0c';

function zone(seed: number): string {
  const pick = random(seed);
  const lines: string[] = [];
  for (let n = 0; n < 8; n++) {
    const kind = pick(['tlsa', 'tlsa', 'tlsa', 'tlsa', 'origin', 'ttl', 'other', 'blank']);
    if (kind === 'origin')
      lines.push(`$ORIGIN ${pick(['example.org.', 'sub.example.org.', 'example.org.', 'rel'])}`);
    else if (kind === 'ttl') lines.push(`$TTL ${pick(['300', '1h', '300', 'x'])}`);
    else if (kind === 'other')
      lines.push(pick(['@ 3600 IN A 192.0.2.1', 'www CNAME mx', '; a comment', '']));
    else {
      // Most lines valid (varied in case, units, blanks and marks), one in five anything.
      const odd = pick([false, false, false, false, true]);
      const owner = pick(
        odd
          ? ['_25._tcp.mx', '@', '', 'a..b.', `${'x'.repeat(70)}.org.`, '_25._TCP.MX.Example.org.']
          : ['_25._tcp.mx.example.org.', '_25._TCP.MX.Example.org.', 'mx.example.org.'],
      );
      const ttl = pick(odd ? ['0', '99999999999', '1h', ''] : ['3600', '300', '1h']);
      const cls = pick(odd ? ['in', '', 'CH'] : ['IN', 'IN', 'in']);
      const type = pick(odd ? ['tlsa', 'TYPE52', 'TXT'] : ['TLSA', 'TLSA', 'tlsa']);
      const rdata = pick(
        odd ? ['3 1 2', '3 1 9', '300 1 1', '3 01 1'] : ['3 1 1', '2 1 1', '2 0 1'],
      );
      const data = pick(
        odd
          ? [
              HEX.slice(1),
              'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
              `${HEX.slice(0, 10)} ${HEX.slice(10)}`,
            ]
          : [HEX, HEX.toUpperCase()],
      );
      const comment = pick([
        '',
        ' ; tlsa:managed',
        ' ;tlsa:managed',
        ' ; other',
        '\t; tlsa:managed x',
      ]);
      const sep = pick([' ', '\t', '  ']);
      const end = pick(['', '', '\r', ' ']);
      lines.push(
        [owner, ttl, cls, type, rdata, data].filter((f) => f !== '').join(sep) + comment + end,
      );
      if (owner === '' && lines.length) lines[lines.length - 1] = ` ${lines.at(-1)}`;
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Each line with "()" before its comment: the tokenizer's full loop, the same tokens. */
function slow(text: string): string {
  return text
    .split('\n')
    .map((l) => {
      if (l === '' || l.startsWith('$')) return l;
      const semi = l.indexOf(';');
      return semi < 0 ? `${l} ()` : `${l.slice(0, semi)}() ${l.slice(semi)}`;
    })
    .join('\n');
}

function read(text: string, origin?: string): unknown {
  try {
    return parseZone(text, 'z.zone', origin ? { origin } : {}).map((e: Entry) => {
      const { lines: _lines, ...rest } = e;
      return rest;
    });
  } catch (e) {
    return { error: (e as Error).message, line: (e as { line?: number }).line };
  }
}

describe('zone file: one-line TLSA records read without tokens', () => {
  it('give what the tokenizer gives, errors included (random zones)', () => {
    let fast = 0;
    let failed = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const text = zone(seed);
      for (const origin of [undefined, 'example.net.']) {
        const got = read(text, origin);
        expect(got, `seed ${seed}\n${text}`).toEqual(read(slow(text), origin));
        if ((got as { error?: string }).error) failed++;
        else fast++;
      }
    }
    // Both outcomes seen often: the cases reach the fast lines and their fallbacks.
    expect(fast).toBeGreaterThan(50);
    expect(failed).toBeGreaterThan(50);
  });

  it('a fast line keeps its bytes, CR included, and its mark', () => {
    const line = `_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${HEX.toUpperCase()} ; tlsa:managed\r`;
    const [e] = parseZone(`${line}\n`, 'z.zone');
    expect(e!.lines).toEqual([line]);
    expect(e!.managed).toBe(true);
    expect(e!.ttl).toBe(3600);
    expect(e!.record).toEqual({
      owner: '_25._tcp.mx.example.org.',
      usage: 3,
      selector: 1,
      matching: 1,
      data: HEX,
    });
  });
});
