/** src/util/regular-file.ts, readRegularText: a file's text decoded chunk by chunk (so that no
 *  buffer of the whole file is ever made) is exactly the text of all its bytes decoded at once,
 *  whatever falls on a chunk boundary: a character split across two reads, invalid UTF-8, a
 *  sequence cut off at the end; and the refusals are those of readRegularFile. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRegularFile, readRegularText } from '../../src/util/regular-file.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const CHUNK = 64 * 1024;
let dir: string;
const refuse = (r: { kind: string }) => new Error(`refused: ${r.kind}`);

beforeAll(() => {
  dir = makeTempDir('tlsa-regular-text-');
});
afterAll(() => removeTempDir(dir));

function fileOf(name: string, bytes: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** `ascii` bytes of 'a', then `tail`: puts `tail` where a chunk boundary falls. */
const around = (ascii: number, tail: Buffer) => Buffer.concat([Buffer.alloc(ascii, 'a'), tail]);

const cases: [string, Buffer][] = [
  ['empty', Buffer.alloc(0)],
  ['a 2-byte character split across two reads', around(CHUNK - 1, Buffer.from('é and more'))],
  ['a 4-byte character split after its first byte', around(CHUNK - 1, Buffer.from('🔒 x'))],
  ['a 4-byte character split after its third byte', around(CHUNK - 3, Buffer.from('🔒 x'))],
  ['a 3-byte character split twice', around(2 * CHUNK - 2, Buffer.from('€€'))],
  ['invalid UTF-8 on the boundary', around(CHUNK - 1, Buffer.from([0xc3, 0x28, 0xff, 0x41]))],
  ['a sequence cut off at the end', around(CHUNK + 5, Buffer.from([0xf0, 0x9f, 0x94]))],
  [
    'latin-1 bytes over several chunks',
    Buffer.from(Array.from({ length: 3 * CHUNK + 7 }, (_, i) => i % 256)),
  ],
];

describe('readRegularText', () => {
  for (const [name, bytes] of cases) {
    it(`${name}: the text of the whole file, in UTF-8 and in latin1`, () => {
      const p = fileOf(`${name.replace(/\W+/g, '-')}.txt`, bytes);
      for (const encoding of ['utf8', 'latin1'] as const) {
        const text = readRegularText(p, { maxBytes: 1 << 20, refuse, encoding });
        expect(text === bytes.toString(encoding)).toBe(true);
        expect(text).toBe(readRegularFile(p, { maxBytes: 1 << 20, refuse }).toString(encoding));
      }
    });
  }

  it('a missing file with allowMissing is undefined; a file over the limit is refused', () => {
    const missing = path.join(dir, 'missing.txt');
    expect(
      readRegularText(missing, { maxBytes: 10, refuse, allowMissing: true, encoding: 'utf8' }),
    ).toBeUndefined();
    expect(() => readRegularText(missing, { maxBytes: 10, refuse, encoding: 'utf8' })).toThrow(
      'refused: open',
    );
    const big = fileOf('big.txt', Buffer.alloc(11, 'a'));
    expect(() => readRegularText(big, { maxBytes: 10, refuse, encoding: 'utf8' })).toThrow(
      'refused: too-big',
    );
    expect(() => readRegularText(dir, { maxBytes: 10, refuse, encoding: 'utf8' })).toThrow(
      'refused: not-regular',
    );
  });
});
