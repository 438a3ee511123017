/** src/cli/daemon-memory.ts: between runs the daemon gives back what a run built. After many
 *  objects were made and most dropped (the survivors spread over every page, as a run leaves
 *  them), one call leaves V8's old generation about as large as what is still live, not as
 *  large as it had grown. */
import { getHeapSpaceStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { releaseRunMemory } from '../../src/cli/daemon-memory.js';

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
