/**
 * applyMany of the powerdns provider over several zones: each zone is read (or its listMany()
 * read taken, powerdns-bases.ts) and written in turn, one zone at a time as before; instead of a
 * read-back per zone, one `GET /zones` after the last write (and the settle pause; in a long
 * batch after every CONFIRM_EVERY zones) confirms every
 * zone whose serial there is still the one our own PATCH left (powerdns-serials.ts ownSerial):
 * nobody wrote to it through the API since, so it holds exactly what we wrote, which is what a
 * read-back would have found. A zone whose serial moved (another writer, maybe one that read
 * before our write and wrote its stale set after it), whose kind or serials cannot tell, or a
 * lone zone (a read-back costs what the list costs) is read back as before: looked at again
 * while others write, repaired when our records were lost. Those read-backs (and repairs) run
 * one zone at a time, as the writes do.
 */
import { sleep } from './kit.js';

/** Zones one list confirms at most: a long batch (a first publish to many zones) lists again
 *  every so many writes, so that no zone waits long for its verdict (or a repair), and the
 *  zones waiting hold little. */
export const CONFIRM_EVERY = 50;

/** Wait for the batch's verdict on a zone's write: `expected` is the serial the zone has if
 *  nobody wrote to it after us (undefined: cannot tell, read it back). True: confirmed. */
export type ConfirmBy = (expected: number | undefined) => Promise<boolean>;

interface Waiter {
  id: string;
  expected: number;
  answer(confirmed: boolean): void;
  done: Promise<void>;
}

/**
 * Write `zones` one after another with `applyZone`, which calls its ConfirmBy once its first
 * write is in (later writes of the zone, repairs, are read back). After the first failure no
 * further zone is started; the zones written so far are still confirmed or read back, then that
 * failure is thrown.
 */
export async function writeAndConfirm<Z>(
  zones: Z[],
  idOf: (z: Z) => string,
  applyZone: (z: Z, confirmBy: ConfirmBy) => Promise<void>,
  serialsNow: () => Promise<Map<string, number>>,
  settleMs: number,
): Promise<void> {
  const waiters: Waiter[] = [];
  const runs: Promise<void>[] = [];
  let failure: { error: unknown } | undefined;
  /** One list for the zones waiting (a lone one is read back instead). */
  const confirmWaiting = async () => {
    const now = waiters.splice(0);
    let serials: Map<string, number> | undefined;
    if (now.length >= 2) {
      await sleep(Math.round(settleMs * (0.5 + Math.random())));
      serials = await serialsNow().catch(() => undefined);
    }
    for (const w of now) {
      const confirmed = serials?.get(w.id) === w.expected;
      w.answer(confirmed);
      if (!confirmed) await w.done.catch(() => undefined);
    }
  };
  for (const z of zones) {
    let reached!: () => void;
    const written = new Promise<void>((r) => {
      reached = r;
    });
    const run: { done?: Promise<void>; asked: boolean } = { asked: false };
    const confirmBy: ConfirmBy = (expected) => {
      if (run.asked || expected === undefined) {
        run.asked = true;
        return Promise.resolve(false);
      }
      run.asked = true;
      return new Promise<boolean>((answer) => {
        waiters.push({ id: idOf(z), expected, answer, done: run.done! });
        reached();
      });
    };
    run.done = applyZone(z, confirmBy);
    runs.push(run.done);
    try {
      await Promise.race([written, run.done]);
    } catch (error) {
      failure = { error };
      break;
    }
    if (waiters.length >= CONFIRM_EVERY) await confirmWaiting();
  }
  // Every zone of the batch that writes has written.
  await confirmWaiting();
  const results = await Promise.allSettled(runs);
  if (failure) throw failure.error;
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
