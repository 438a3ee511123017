/** The state file in the layout tlsa writes it (stateText in state.ts: each record on a line of
 *  its own, between `  "records": [` and `  ]`), read a piece at a time: each record line is
 *  parsed as it arrives, and the rest of the file (version, TTL facts, observed records) is
 *  parsed as one small text with the records left out. The whole text (13 MB at 10,000
 *  services) and the pieces it was joined from (as many again) are then never held at once, on
 *  top of what a run already holds. Any other layout, and any text that is not JSON, gives
 *  undefined: the caller parses the whole text as before, so that such a file reads as it did
 *  and its errors say what they said. Pure: text in, value out. */
/** Far above a record line's length (≈ 300 characters, a few more with a `held` reason). */
const MAX_LINE = 256 * 1024;

export class StateLines {
  private rest = '';
  private readonly outside: string[] = [];
  private readonly records: unknown[] = [];
  /** Inside the records section; after a record: whether its line ended with a comma. */
  private section: 'before' | 'in' | 'after' = 'before';
  private lastComma: boolean | undefined;
  private failed = false;

  push(piece: string): void {
    if (this.failed) return;
    const text = this.rest + piece;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.line(text.slice(start, nl));
      if (this.failed) return;
      start = nl + 1;
    }
    this.rest = text.slice(start);
    // No record line is this long: a file on one line (or a few) is not in the layout, and
    // gathering it here a piece at a time would copy it over and over.
    if (this.rest.length > MAX_LINE) this.failed = true;
  }

  /** The parsed file, or undefined when it is not in the layout (or not JSON). */
  end(): unknown {
    if (this.failed || this.section !== 'after') return undefined;
    this.outside.push(this.rest);
    let top: unknown;
    try {
      top = JSON.parse(this.outside.join('\n'));
    } catch {
      return undefined;
    }
    const records = (top as { records?: unknown } | null)?.records;
    if (!Array.isArray(records) || records.length !== 0) return undefined;
    (top as { records: unknown[] }).records = this.records;
    return top;
  }

  private line(l: string): void {
    if (l.includes('\r')) {
      this.failed = true;
      return;
    }
    if (this.outside.length === 0 && l !== '{') {
      this.failed = true;
      return;
    }
    if (this.section !== 'in') {
      if (l === '  "records": [' && this.section === 'before') this.section = 'in';
      // A second records key, or one not in the layout: the whole text decides which counts.
      else if (l.startsWith('  "records"')) this.failed = true;
      this.outside.push(l);
      return;
    }
    if (l === '  ]' || l === '  ],') {
      // A comma after the last record is not JSON: the whole text's parse says so.
      if (this.lastComma === true) this.failed = true;
      this.section = 'after';
      this.outside.push(l);
      return;
    }
    // A record after one whose line had no comma is not JSON either.
    if (!l.startsWith('    {') || this.lastComma === false) {
      this.failed = true;
      return;
    }
    const comma = l.endsWith(',');
    try {
      this.records.push(JSON.parse(comma ? l.slice(0, -1) : l));
    } catch {
      this.failed = true;
      return;
    }
    this.lastComma = comma;
  }
}
