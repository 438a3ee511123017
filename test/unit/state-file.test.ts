/** src/engine/state.ts: the state file as written, one record a line (a fleet's state is read
 *  by every run), and read back as the value that was written. In that layout it is read a
 *  record line at a time (src/engine/state-lines.ts), the same value as JSON.parse of the whole
 *  text however the text is cut into pieces; any other layout, and any text that is not JSON,
 *  is left to the whole-text parse, so that such a file reads, and its errors say, as before. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readState,
  STATE_FILE,
  stateText,
  writeState,
  type StateFile,
} from '../../src/engine/state.js';
import { StateLines } from '../../src/engine/state-lines.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('tlsa-state-file-');
});
afterAll(() => {
  if (dir) removeTempDir(dir);
});

const record = (i: number) => ({
  owner: `_25._tcp.mx${i}.example.org.`,
  usage: 3,
  selector: 1,
  matching: 1,
  data: 'ab'.repeat(32),
  provider: 'local',
  service: `s${i}`,
  ttl: 3600,
  status: 'published' as const,
  addedAt: '2026-01-01T00:00:00.000Z',
  publishedAt: '2026-01-01T00:00:01.000Z',
  seenAt: undefined,
  by: 'publish@host:1',
});

describe('the state file', () => {
  it('holds one record a line and reads back as the value written', () => {
    const state = {
      version: 1,
      records: [
        record(0),
        record(1),
        { ...record(2), held: { why: 'a "quoted" why\nline', at: '2026-01-02T00:00:00.000Z' } },
      ],
      ttls: {
        '_25._tcp.mx0.example.org.': [
          { ttl: 300, at: '2026-01-01T00:00:00.000Z', source: 'before-write', served: 'negative' },
        ],
        'odd "name"': [],
      },
      observed: {},
      extra: undefined,
    } as unknown as StateFile;
    writeState(dir, state);
    const text = fs.readFileSync(path.join(dir, STATE_FILE), 'utf8');
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(state)));
    expect(readState(dir)).toEqual(JSON.parse(JSON.stringify(state)));
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('    {"owner":'))).toHaveLength(3);
    expect(lines[0]).toBe('{');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).not.toContain('seenAt');
    expect(text).not.toContain('extra');
  });

  it('empty lists and maps, and an empty state', () => {
    const state: StateFile = { version: 1, records: [], ttls: {} };
    expect(JSON.parse(stateText(state))).toEqual(state);
    expect(stateText(state)).toBe('{\n  "version": 1,\n  "records": [],\n  "ttls": {}\n}\n');
  });
});

/** A record with what JSON escapes (quotes, a backslash, U+2028, newlines) and a `held`. */
const awkward = (i: number) => ({
  ...record(i),
  service: `s${i} "quoted" \\ ü ${'\u2028'}`,
  ...(i % 3 === 0
    ? { held: { why: 'a server, still: {"x": [1]}\n', at: '2026-01-02T00:00:00.000Z' } }
    : {}),
});

const state: StateFile = {
  version: 1,
  records: Array.from({ length: 50 }, (_, i) => awkward(i)) as StateFile['records'],
  ttls: {
    '_25._tcp.mx0.example.org.': [
      { ttl: 300, at: '2026-01-01T00:00:00.000Z', source: 'before-write', served: 'negative' },
    ],
  },
  observed: { '_25._tcp.mx1.example.org.': { '3 1 1 abab': '2026-01-01T00:00:00.000Z' } },
};

/** The text fed in pieces of `size` characters (a piece may end inside a line or a record). */
function fed(text: string, size: number): unknown {
  const lines = new StateLines();
  for (let i = 0; i < text.length; i += size) lines.push(text.slice(i, i + size));
  return lines.end();
}

describe('StateLines (src/engine/state-lines.ts)', () => {
  const text = stateText(state);

  it("reads tlsa's layout as JSON.parse reads the whole text, in pieces of any size", () => {
    for (const size of [1, 7, 64, 1000, text.length]) {
      const got = fed(text, size);
      expect(got).toStrictEqual(JSON.parse(text));
      expect(JSON.stringify(got)).toBe(JSON.stringify(JSON.parse(text)));
    }
    // A state that is only version and records, and one record.
    const small = stateText({ version: 1, records: state.records.slice(0, 1) });
    expect(fed(small, 5)).toStrictEqual(JSON.parse(small));
  });

  it('leaves every other text to the whole-text parse', () => {
    const lines = text.split('\n');
    const first = lines.findIndex((l) => l.startsWith('    {'));
    const last = lines.indexOf('  ],');
    const variants: Record<string, string> = {
      'one line': JSON.stringify(state),
      'no records': stateText({ version: 1, records: [] }),
      'CR LF': text.replaceAll('\n', '\r\n'),
      'comma after the last record': [
        ...lines.slice(0, last - 1),
        `${lines[last - 1]},`,
        ...lines.slice(last),
      ].join('\n'),
      'no comma between records': [
        ...lines.slice(0, first),
        lines[first]!.slice(0, -1),
        ...lines.slice(first + 1),
      ].join('\n'),
      'two records on a line': [
        ...lines.slice(0, first),
        `${lines[first]} ${lines[first + 1]}`,
        ...lines.slice(first + 2),
      ].join('\n'),
      'a second records key': text.replace(/\n}\n$/, ',\n  "records": []\n}\n'),
      'records not closed': lines.slice(0, last).join('\n'),
      'a blank line among the records': [
        ...lines.slice(0, first + 1),
        '',
        ...lines.slice(first + 1),
      ].join('\n'),
      'a byte order mark': `\uFEFF${text}`,
      'a record line longer than any tlsa writes': text.replace(
        '"by":"publish@host:1"',
        `"by":"${'x'.repeat(300 * 1024)}"`,
      ),
      'cut short': text.slice(0, -3),
    };
    for (const [what, variant] of Object.entries(variants)) {
      expect(fed(variant, 100), what).toBeUndefined();
    }
  });
});

describe('readState in either way', () => {
  const write = (text: string) => fs.writeFileSync(path.join(dir, STATE_FILE), text);

  it("gives the value written, in tlsa's layout and in any other", () => {
    write(stateText(state));
    expect(readState(dir)).toStrictEqual(JSON.parse(stateText(state)));
    write(JSON.stringify(state, null, 3));
    expect(readState(dir)).toStrictEqual(JSON.parse(stateText(state)));
  });

  it('says what JSON.parse says of a text in the layout that is not JSON', () => {
    const lines = stateText(state).split('\n');
    const last = lines.indexOf('  ],');
    const broken = [...lines.slice(0, last - 1), `${lines[last - 1]},`, ...lines.slice(last)].join(
      '\n',
    );
    write(broken);
    let parseError = '';
    try {
      JSON.parse(broken);
    } catch (e) {
      parseError = (e as Error).message;
    }
    expect(parseError).not.toBe('');
    expect(() => readState(dir)).toThrow(`not JSON: ${parseError}`);
  });
});
