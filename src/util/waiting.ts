/** Progress while network steps are pending, so that a silent server never means a silent
 *  command: at most one line per interval naming what is awaited and for how long, and
 *  nothing at all when everything answers within the first interval. */

export interface WaitTracker {
  /** Report `work` as pending under `what` (e.g. "the resolver 127.0.0.1:53") until it settles. */
  track<T>(what: string, work: Promise<T>): Promise<T>;
}

export interface WaitTrackerOptions {
  /** Minimum time between two lines, and how long something must be pending before the
   *  first one (default 1000 ms). */
  everyMs?: number;
  /** The overall limit, shown in each line ("3 s of 5 s"). */
  limitMs?: number;
  now?: () => number;
}

/** The line for things pending since `elapsedMs` (pure, for the tests). */
export function waitLine(whats: readonly string[], elapsedMs: number, limitMs?: number): string {
  const s = Math.floor(elapsedMs / 1000);
  return `waiting for ${whats.join(', ')}: ${s} s${limitMs !== undefined ? ` of ${Math.round(limitMs / 1000)} s` : ''}`;
}

/** A tracker that prints through `print`; elapsed time counts from its creation. */
export function waitTracker(
  print: (line: string) => void,
  o: WaitTrackerOptions = {},
): WaitTracker {
  const every = o.everyMs ?? 1000;
  const now = o.now ?? Date.now;
  const started = now();
  const pending = new Map<number, { what: string; since: number }>();
  let nextId = 0;
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  const tick = (): void => {
    const t = now();
    const items = [...pending.values()];
    if (!items.length) {
      stop();
      return;
    }
    if (t - Math.min(...items.map((i) => i.since)) < every) return;
    print(waitLine([...new Set(items.map((i) => i.what))], t - started, o.limitMs));
  };
  return {
    track(what, work) {
      const id = nextId++;
      pending.set(id, { what, since: now() });
      if (!timer) {
        timer = setInterval(tick, every);
        timer.unref(); // the pending work keeps the process alive, not the progress
      }
      return work.finally(() => {
        pending.delete(id);
        if (!pending.size) stop();
      });
    },
  };
}

/** For callers that want no progress. */
export const NO_PROGRESS: WaitTracker = { track: (_what, work) => work };
