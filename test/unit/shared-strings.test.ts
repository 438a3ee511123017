/** Equal values read in bulk are kept as one string each (src/util/string-pool.ts): the state's
 *  records (src/engine/state.ts) and the providers' listings (src/engine/provider-calls.ts).
 *  A fleet's run holds them from start to end; each copy JSON.parse or a provider's answer
 *  makes was memory held for nothing. Counted in a heap snapshot of a child process. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateText, type StateFile } from '../../src/engine/state.js';
import { recentStrings, stringPool } from '../../src/util/string-pool.js';
import { stringCopies } from '../helpers/heap-copies.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('tlsa-shared-strings-');
});
afterAll(() => {
  if (dir) removeTempDir(dir);
});

const DIGEST = `${'c0ffee'.repeat(10)}abcd`;
const ADDED = '2026-01-01T00:00:00.123Z';
const ACTOR = 'publish@host.example:4242';
const SRC = join(__dirname, '../../src');

describe('stringPool', () => {
  it('gives back the first of equal strings and counts the distinct ones', () => {
    const pool = stringPool();
    expect(pool.share('a')).toBe('a');
    expect(pool.share('b')).toBe('b');
    expect(pool.share('a')).toBe('a');
    expect(pool.size).toBe(2);
  });
});

describe('recentStrings', () => {
  it('returns the value it was given, whatever it holds', () => {
    const share = recentStrings(2);
    expect(['x', 'y', 'x', 'z', 'x', 'y'].map(share)).toEqual(['x', 'y', 'x', 'z', 'x', 'y']);
  });
});

describe('one string per repeated value', () => {
  it.each([
    ['in one line', (v: unknown) => JSON.stringify(v)],
    ["in tlsa's layout", (v: unknown) => stateText(v as StateFile)],
  ])('readState, %s: the records share their digest, time and actor', (_, text) => {
    const records = Array.from({ length: 300 }, (_, i) => ({
      owner: `_25._tcp.mx${i}.example.org.`,
      usage: 3,
      selector: 1,
      matching: 1,
      data: DIGEST,
      provider: 'local',
      service: `s${i}`,
      ttl: 3600,
      status: 'published',
      addedAt: ADDED,
      by: ACTOR,
      publishedAt: ADDED,
    }));
    writeFileSync(join(dir, 'state.json'), text({ version: 1, records }));
    const copies = stringCopies(
      dir,
      `import { readState } from ${JSON.stringify(join(SRC, 'engine/state.ts'))};`,
      `globalThis.kept = readState(${JSON.stringify(dir)});
       if (globalThis.kept.records.length !== 300) throw new Error('not read');
       return [${JSON.stringify(DIGEST)}, ${JSON.stringify(ADDED)}, ${JSON.stringify(ACTOR)}];`,
    );
    // Before: one copy per record (300, and 600 of the time, in addedAt and publishedAt). Now
    // the shared one, the script's own literal and, for the digest, the last one a check's
    // RegExp was given (V8 keeps it as RegExp.input).
    for (const n of copies) expect(n).toBeLessThanOrEqual(3);
  });

  it('listAll: listed records share the owner name asked and their digest', () => {
    const owners = Array.from({ length: 100 }, (_, i) => `_25._tcp.mx${i}.example.net.`);
    const copies = stringCopies(
      dir,
      `import { listAll } from ${JSON.stringify(join(SRC, 'engine/provider-calls.ts'))};`,
      `// Each answer parsed anew, as a provider's HTTP answer is: every string a fresh copy.
       const answer = JSON.stringify(${JSON.stringify(owners)}.map((owner) =>
         [0, 1, 2].map(() => ({ owner, usage: 3, selector: 1, matching: 1, data: ${JSON.stringify(DIGEST)} }))));
       const provider = {
         name: 'fake',
         async list() { throw new Error('listMany expected'); },
         async listMany(asked) {
           const parsed = JSON.parse(answer);
           return new Map(asked.map((o, i) => [o, parsed[i]]));
         },
       };
       const asked = new Set(JSON.parse(${JSON.stringify(JSON.stringify(owners))}));
       globalThis.kept = await listAll(new Map([['fake', provider]]), new Map([['fake', asked]]));
       if (globalThis.kept.get('fake').get(${JSON.stringify(owners[7])}).length !== 3) throw new Error('not listed');
       return [${JSON.stringify(DIGEST)}, ${JSON.stringify(owners[7])}];`,
    );
    // Before: a digest per record (300) and the owner asked beside its three listed copies.
    // Now the shared one and the script's own literal.
    expect(copies).toEqual([2, 2]);
  });
});
