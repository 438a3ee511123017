/**
 * The TTL a zone file's server really serves at a TLSA owner. A server loads one TTL per RRset
 * (BIND the first line's: "TTL set to prior TTL"; Knot the last line's: "TTL mismatch … TTL set
 * to"), so lines of one owner with different TTLs are served with one of them, which need not
 * be tlsa's. tlsa writes and waits with the highest TTL of the lines it did not write
 * (unmarked: by hand, another tool, or adopted): the file then holds one TTL per RRset, and a
 * wait is never shorter than what a cache may hold. tlsa's own marked lines never pin it: after
 * a `ttl:` change they are rewritten with the new TTL (contract rule 4). Pure: entries in, TTLs
 * out.
 */
import type { PublishedTtl } from './contract.js';
import type { Entry } from './zonefile-parse.js';

/** The unmarked TLSA line with the highest TTL at an owner: where it is and its TTL. */
export interface PinningLine {
  ttl: number;
  file: string;
  line: number;
  /** The TTL written on the line, when over MAX_TTL (`ttl` is then CAPPED_TTL). */
  written?: number;
}

/** The highest TTL (RFC 2181 section 8): a TTL with the top bit set is served as 0 by BIND
 *  ("> MAXTTL, setting TTL to 0") but as written by Knot, and a resolver then takes it as 0
 *  (RFC 2181) or caps it (RFC 8767: days, 7 recommended). */
const MAX_TTL = 2 ** 31 - 1;
/** What such a TTL counts as: RFC 8767's recommended cap, the highest TTL tlsa writes. Taken
 *  as written, one digit too many made tlsa wait for decades. */
const CAPPED_TTL = 604800;

/** Per owner name, its unmarked TLSA line with the highest known TTL (a line without a TTL
 *  and no $TTL above it takes the server's default, which tlsa cannot know: not counted). */
export function foreignTtls(
  all: readonly { file: string; entry: Entry }[],
): Map<string, PinningLine> {
  const out = new Map<string, PinningLine>();
  for (const { file, entry: e } of all) {
    if (!e.record || e.managed || e.ttl === undefined) continue;
    const ttl = e.ttl > MAX_TTL ? CAPPED_TTL : e.ttl;
    const known = out.get(e.record.owner);
    if (!known || ttl > known.ttl)
      out.set(e.record.owner, {
        ttl,
        file,
        line: e.line,
        ...(e.ttl > MAX_TTL ? { written: e.ttl } : {}),
      });
  }
  return out;
}

/** The TTL tlsa publishes with at an owner for a configured `ttl`: `ttl`, or a higher one of
 *  a line tlsa did not write, with why. */
export function publishedTtl(ttl: number, pin: PinningLine | undefined): number | PublishedTtl {
  if (!pin || pin.ttl <= ttl) return ttl;
  const written =
    pin.written === undefined
      ? pin.ttl
      : `${pin.written} (over 2^31 - 1: resolvers keep it up to ${pin.ttl})`;
  const cause = `a TLSA line there not written by tlsa (${pin.file} line ${pin.line}) has TTL ${written}`;
  return {
    ttl: pin.ttl,
    why: `raised from ${ttl}: ${cause}, and the server serves the RRset with one TTL; lower that line's TTL to publish with ${ttl}`,
    cause,
  };
}
