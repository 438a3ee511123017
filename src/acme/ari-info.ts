/** The CA's answer to a renewalInfo request (RFC 9773 §4.2): the suggested window, an optional
 *  explanation URL, and the Retry-After header that says when to ask again. Pure: a bad answer
 *  is returned as the reason it is unusable, never thrown, since the lifetime rule then decides. */
import type { AriWindow } from './renewal-time.js';

export interface RenewalInfo {
  window: AriWindow;
  explanationURL?: string;
}

export type RenewalInfoResult = { ok: true; info: RenewalInfo } | { ok: false; why: string };

const bad = (why: string): RenewalInfoResult => ({ ok: false, why });

/** RFC 3339 as the CA writes it; Date.parse also takes forms RFC 3339 forbids, which is fine
 *  for reading a time a CA meant. */
function timeOf(v: unknown): Date | undefined {
  if (typeof v !== 'string') return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

export function parseRenewalInfo(status: number, body: string): RenewalInfoResult {
  if (status !== 200) return bad(`HTTP ${status}`);
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return bad('not JSON');
  }
  const w = (v as { suggestedWindow?: unknown } | null)?.suggestedWindow as
    | { start?: unknown; end?: unknown }
    | undefined;
  if (!w || typeof w !== 'object') return bad('no suggestedWindow');
  const start = timeOf(w.start);
  const end = timeOf(w.end);
  if (!start || !end) return bad('the suggestedWindow has no valid start and end');
  // RFC 9773 §4.2: an end at or before the start makes the whole answer invalid.
  if (end.getTime() <= start.getTime())
    return bad('the suggestedWindow does not end after it starts');
  const url = (v as { explanationURL?: unknown }).explanationURL;
  return {
    ok: true,
    info: { window: { start, end }, ...(typeof url === 'string' ? { explanationURL: url } : {}) },
  };
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as seconds from `now`;
 *  undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | undefined, now: Date): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return undefined;
  return Math.max(0, Math.round((ms - now.getTime()) / 1000));
}
