/** Equal strings kept once. A fleet's data repeats the same few values tens of thousands of
 *  times (one certificate's digest at every owner, one run's time and actor on every record it
 *  wrote), and JSON.parse, a regex match or a template literal makes a new string each time:
 *  at 10,000 services the copies were ≈ 9 MB of the state alone. A pool lives as long as the
 *  values it is asked for (one read, one run), never longer: it holds every string it returns. */
export interface StringPool {
  /** `s`, or the equal string this pool returned first. */
  share(s: string): string;
  /** How many distinct strings it holds. */
  readonly size: number;
}

export function stringPool(): StringPool {
  const seen = new Map<string, string>();
  const share = (s: string): string => {
    const got = seen.get(s);
    if (got !== undefined) return got;
    seen.set(s, s);
    return s;
  };
  return {
    share,
    get size() {
      return seen.size;
    },
  };
}

/** `share` for values that repeat in runs, from a pool that never grows: the last `size`
 *  distinct strings it was given, compared in place (no hashing). What a parser of records
 *  can keep for the life of the process: a fleet's listings repeat a few digests record after
 *  record (one per chain and record type), each of which would otherwise be a copy. */
export function recentStrings(size: number): (s: string) => string {
  const recent: string[] = [];
  let next = 0;
  return (s) => {
    for (let i = 0; i < recent.length; i++) if (recent[i] === s) return recent[i]!;
    if (recent.length < size) recent.push(s);
    else recent[next] = s;
    next = (next + 1) % size;
    return s;
  };
}
