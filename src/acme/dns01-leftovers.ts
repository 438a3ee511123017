/** DNS-01 TXT values that may still be in DNS: STATE_DIR/acme/SERVICE/dns01-pending.json. A
 *  value is recorded before it is written and dropped once its removal succeeded, so a removal
 *  that failed, or a run that was killed in between, leaves a record the next run acts on. */
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errnoCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface PendingTxt {
  /** The provider instance (`providers.<name>`) that wrote it. */
  provider: string;
  owner: string;
  values: string[];
  /** When it was recorded (ISO 8601). */
  since: string;
}

export function pendingTxtPath(stateDir: string, service: string): string {
  return join(stateDir, 'acme', service, 'dns01-pending.json');
}

export function readPendingTxt(file: string): PendingTxt[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw e;
  }
  try {
    const data = JSON.parse(text) as { pending?: unknown };
    return Array.isArray(data.pending) ? (data.pending as PendingTxt[]) : [];
  } catch {
    // A torn file cannot happen (atomic writes); an edited one is not worth failing a renewal.
    return [];
  }
}

/** Nothing pending: no file. */
function writePendingTxt(file: string, pending: PendingTxt[]): void {
  if (!pending.length) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomic(file, `${JSON.stringify({ version: 1, pending }, null, 2)}\n`, 0o600);
}

/** Record values about to be written (merged with what is recorded for the owner). */
export function recordPendingTxt(file: string, entry: PendingTxt): void {
  const all = readPendingTxt(file);
  const same = all.find((p) => p.provider === entry.provider && p.owner === entry.owner);
  if (same) same.values = [...new Set([...same.values, ...entry.values])];
  else all.push(entry);
  writePendingTxt(file, all);
}

/** Forget values whose removal succeeded. */
export function dropPendingTxt(file: string, provider: string, owner: string, values: string[]) {
  const gone = new Set(values);
  const all = readPendingTxt(file).flatMap((p) => {
    if (p.provider !== provider || p.owner !== owner) return [p];
    const left = p.values.filter((v) => !gone.has(v));
    return left.length ? [{ ...p, values: left }] : [];
  });
  writePendingTxt(file, all);
}
