/** Where each owned record stands and what it waits for. Pure: state + clock in, view out.
 *  Propagation to every authoritative server is checked by the verification module; until
 *  that has seen a record, age alone is reported here and said to be unverified. */
import type { OwnedRecord } from './state.js';

export type Phase = 'publishing' | 'pending' | 'live' | 'retiring' | 'removing';

export interface RecordView {
  record: OwnedRecord;
  phase: Phase;
  /** Seconds since the record entered this phase. */
  ageSeconds: number;
  /** Seconds until the next transition, when time alone decides it. */
  nextInSeconds?: number;
  waitsFor: string;
}

/** When a published record is (or will be) live. Caches that still hold the old RRset got it
 *  before the new records were on the servers, so they forget it at most a TTL after that; the
 *  2×TTL count starts when every authoritative server was seen serving the record (a moment we
 *  know for sure), or at publication when propagation is not checked. Undefined while the
 *  servers have not been seen serving it. */
export function liveAt(r: OwnedRecord, propagationChecked: boolean): Date | undefined {
  if (r.status !== 'published' || !r.publishedAt) return undefined;
  const published = new Date(r.publishedAt).getTime();
  if (!propagationChecked) return new Date(published + 2 * r.ttl * 1000);
  if (!r.seenAt) return undefined;
  return new Date(Math.max(published, new Date(r.seenAt).getTime()) + 2 * r.ttl * 1000);
}

export function viewRecord(r: OwnedRecord, now: Date, graceSeconds?: number, propagationChecked = false): RecordView {
  const t = now.getTime();
  const since = (iso: string | undefined) => (iso ? (t - new Date(iso).getTime()) / 1000 : 0);
  switch (r.status) {
    case 'publishing':
      return { record: r, phase: 'publishing', ageSeconds: since(r.addedAt), waitsFor: 'the provider call to be confirmed (an interrupted run: the next run settles it)' };
    case 'removing':
      return { record: r, phase: 'removing', ageSeconds: since(r.retiringSince ?? r.addedAt), waitsFor: 'the removal to be confirmed (an interrupted run: the next run settles it)' };
    case 'retiring': {
      const age = since(r.retiringSince);
      const left = (graceSeconds ?? r.ttl) - age;
      return { record: r, phase: 'retiring', ageSeconds: age, nextInSeconds: Math.max(0, left), waitsFor: left > 0 ? 'the grace period (TTL) so caches forget it, then removal by publish' : 'removal by the next publish' };
    }
    case 'published': {
      const age = since(r.publishedAt);
      const live = liveAt(r, propagationChecked);
      if (!live) return { record: r, phase: 'pending', ageSeconds: age, waitsFor: 'every authoritative server to serve it (checked by the hook, the daemon and check), then 2×TTL' };
      const left = (live.getTime() - t) / 1000;
      if (left > 0) return { record: r, phase: 'pending', ageSeconds: age, nextInSeconds: left, waitsFor: propagationChecked ? '2×TTL since every authoritative server served it' : '2×TTL since publication before a chain relying on it is served' };
      return { record: r, phase: 'live', ageSeconds: age, waitsFor: '' };
    }
  }
}
