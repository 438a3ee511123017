import { describe, expect, it } from 'vitest';
import { withRetry } from '../../src/util/retry.js';

describe('withRetry', () => {
  it('retries retryable errors with growing, jittered, bounded delays', async () => {
    const delays: number[] = [];
    let calls = 0;
    const out = await withRetry(
      async () => {
        if (++calls < 4) throw new Error('429');
        return 'ok';
      },
      {
        isRetryable: () => true,
        baseDelayMs: 100,
        maxDelayMs: 250,
        random: () => 1,
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    expect(out).toBe('ok');
    expect(delays).toEqual([100, 200, 250]);
  });
  it('fails fast on a permanent error and gives up after the attempts', async () => {
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new Error('403');
        },
        { isRetryable: () => false },
      ),
    ).rejects.toThrow('403');
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new Error('503');
        },
        { isRetryable: () => true, attempts: 3, sleep: async () => {} },
      ),
    ).rejects.toThrow('503');
    expect(calls).toBe(3);
  });
  it('honours a server-given Retry-After', async () => {
    const delays: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (++calls === 1) throw new Error('429');
      },
      {
        isRetryable: () => true,
        retryAfterMs: () => 1500,
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    expect(delays).toEqual([1500]);
  });
});
