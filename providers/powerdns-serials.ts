/**
 * What a zone's SOA serial says about writes through the PowerDNS API (pure). With
 * `soa_edit_api` set, every PATCH raises the serial in the transaction that writes the RRsets and
 * answers the new one in `X-PDNS-New-Serial` (4.7 also sends `X-PDNS-Old-Serial`, but fills it
 * with the new serial: not used). How much it rises is the zone's soa_edit_api kind
 * (pdns serialtweaker.cc, calculateIncreaseSOA):
 *   INCREASE           serial + 1
 *   DEFAULT            the day's first serial YYYYMMDD01 (server's local date) when that is
 *                      higher, else serial + 1
 *   SOA-EDIT-INCREASE  the SOA-EDIT value when that is higher, else serial + 1
 *   EPOCH              the time in seconds: two writes in one second leave the same serial
 *   SOA-EDIT, NONE, "" or unknown: may leave the serial as it was.
 */

/** Kinds under which every write moves the serial to a value it never had since (each write
 *  raises it: only 2^32 writes could bring it back). */
const RISING = new Set(['DEFAULT', 'INCREASE', 'SOA-EDIT-INCREASE']);

export const serialRisesOnEveryWrite = (soaEditApi: string | undefined): boolean =>
  soaEditApi !== undefined && RISING.has(soaEditApi.toUpperCase());

const next = (serial: number) => (serial + 1) >>> 0;

/** YYYYMMDD01 for the UTC date `days` from `now`. */
function dayFirst(now: number, days: number): number {
  const d = new Date(now + days * 86_400_000);
  return (d.getUTCFullYear() * 10_000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate()) * 100 + 1;
}

/**
 * The serial the zone has after our PATCHes when no other writer used the API since the read
 * they were computed on (serial `before`), or undefined when the serials cannot show that:
 * a kind that does not raise the serial on every write, a PATCH without `X-PDNS-New-Serial`,
 * or serials that another write explains better than ours:
 *  - each PATCH after the first must raise it by exactly one (a write between two of ours
 *    would add at least one more);
 *  - the first must raise `before` by one, or (DEFAULT) jump to a day's first serial: that of
 *    the server's local date, within a day of `now` (UTC), the first write of the day. Another
 *    write before ours on the same day would have made ours YYYYMMDD02 or later.
 * A later list showing the zone at this serial shows that no write went to the zone through
 * the API after ours (every write there raises it): the zone holds what our PATCHes made.
 */
export function ownSerial(
  soaEditApi: string | undefined,
  before: number | undefined,
  newSerials: Array<number | undefined>,
  now: number,
): number | undefined {
  if (!serialRisesOnEveryWrite(soaEditApi) || before === undefined || !newSerials.length)
    return undefined;
  const [first, ...rest] = newSerials;
  if (first === undefined) return undefined;
  const daysFirst =
    soaEditApi!.toUpperCase() === 'DEFAULT' &&
    first > before &&
    [-1, 0, 1].some((d) => dayFirst(now, d) === first);
  if (first !== next(before) && !daysFirst) return undefined;
  let last = first;
  for (const s of rest) {
    if (s === undefined || s !== next(last)) return undefined;
    last = s;
  }
  return last;
}

/** The serial PowerDNS answered a PATCH with (`X-PDNS-New-Serial`), if any. */
export function newSerialOf(headers: { get(name: string): string | null }): number | undefined {
  const v = headers.get('x-pdns-new-serial');
  return v !== null && /^\d{1,10}$/.test(v) && Number(v) <= 0xffff_ffff ? Number(v) : undefined;
}
