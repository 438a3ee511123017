/** src/cli/daemon-memory.ts: between runs the daemon gives back what a run built. After many
 *  objects were made and most dropped (the survivors spread over every page, as a run leaves
 *  them), one call leaves V8's old generation about as large as what is still live, not as
 *  large as it had grown. During a run its heap is kept small (keepHeapSmall, checked in a
 *  fresh process: V8's flags are the whole process's). */
import { join } from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseRunMemory } from '../../src/cli/daemon-memory.js';
import { inChild } from '../helpers/heap-copies.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const oldSpace = () => {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'old_space')!;
  return { committedMb: s.space_size / 2 ** 20, usedMb: s.space_used_size / 2 ** 20 };
};

describe('releaseRunMemory', () => {
  it('returns the pages a run spread its survivors over', () => {
    const kept: object[] = [];
    let all: object[] | undefined = [];
    for (let i = 0; i < 1_500_000; i++) {
      const o = { name: `service-${i}`, ports: [i] };
      all.push(o);
      if (i % 20 === 0) kept.push(o);
    }
    const grown = oldSpace();
    all = undefined;
    releaseRunMemory();
    const after = oldSpace();
    expect(kept.length).toBe(75_000);
    expect(grown.committedMb).toBeGreaterThan(after.committedMb + 40);
    // Compacted: what stays committed is close to what is live.
    expect(after.committedMb).toBeLessThan(after.usedMb * 1.5 + 8);
  });
});

describe('keepHeapSmall', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('tlsa-daemon-memory-');
  });
  afterAll(() => {
    if (dir) removeTempDir(dir);
  });

  // A run's worth of objects that live a while (a fleet's targets and state): V8 grows the
  // young generation from its start size unless told not to.
  const youngGeneration = (call: boolean) =>
    inChild(
      dir,
      `import { getHeapSpaceStatistics } from 'node:v8';
       import { keepHeapSmall } from ${JSON.stringify(join(__dirname, '../../src/cli/daemon-memory.ts'))};`,
      `const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
       const before = young();
       ${call ? 'keepHeapSmall();' : ''}
       const kept = [];
       for (let i = 0; i < 600000; i++) kept.push({ name: 'service-' + i, ports: [i] });
       return { before, after: young(), kept: kept.length };`,
    ) as { before: number; after: number; kept: number };

  it('keeps the young generation at its start size', () => {
    const MB = 2 ** 20;
    const grown = youngGeneration(false);
    const kept = youngGeneration(true);
    expect(grown.kept).toBe(600000);
    // Without it V8 grows the young generation, to 2 × 16 MB as the daemon's runs did; with
    // it, it stays at its two start semi-spaces of 1 MB.
    expect(grown.after).toBeGreaterThanOrEqual(16 * MB);
    expect(kept.after).toBeLessThanOrEqual(2 * MB);
  });
});
