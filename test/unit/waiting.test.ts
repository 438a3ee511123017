/** Progress while network steps are pending: nothing for quick answers, at most one line per
 *  interval for slow ones, naming what is awaited and the time spent out of the limit. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { waitLine, waitTracker } from '../../src/util/waiting.js';

describe('waitTracker', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says nothing when the work settles within the first interval', async () => {
    const lines: string[] = [];
    const w = waitTracker((l) => lines.push(l), { now: () => Date.now() });
    const done = w.track('the resolver 127.0.0.1:53', new Promise((r) => setTimeout(r, 600)));
    await vi.advanceTimersByTimeAsync(3000);
    await done;
    expect(lines).toEqual([]);
  });

  it('one line a second while something is pending, with the limit; silent again once it settles', async () => {
    const lines: string[] = [];
    const w = waitTracker((l) => lines.push(l), { limitMs: 5000, now: () => Date.now() });
    let settle: () => void = () => undefined;
    const pending = w.track(
      'the resolver 127.0.0.1:5353',
      new Promise<void>((r) => {
        settle = r;
      }),
    );
    await vi.advanceTimersByTimeAsync(3500);
    expect(lines).toEqual([
      'waiting for the resolver 127.0.0.1:5353: 1 s of 5 s',
      'waiting for the resolver 127.0.0.1:5353: 2 s of 5 s',
      'waiting for the resolver 127.0.0.1:5353: 3 s of 5 s',
    ]);
    settle();
    await pending;
    await vi.advanceTimersByTimeAsync(5000);
    expect(lines).toHaveLength(3);
  });

  it('several pending things share one line', async () => {
    const lines: string[] = [];
    const w = waitTracker((l) => lines.push(l), { now: () => Date.now() });
    void w.track('the resolver 127.0.0.1:53', new Promise(() => undefined));
    void w.track('TLS probes of mx.example.org:25', new Promise(() => undefined));
    void w.track('the resolver 127.0.0.1:53', new Promise(() => undefined));
    await vi.advanceTimersByTimeAsync(1000);
    expect(lines).toEqual([
      'waiting for the resolver 127.0.0.1:53, TLS probes of mx.example.org:25: 1 s',
    ]);
  });

  it('waitLine', () => {
    expect(waitLine(['x'], 2999)).toBe('waiting for x: 2 s');
    expect(waitLine(['x', 'y'], 4000, 5000)).toBe('waiting for x, y: 4 s of 5 s');
  });
});
