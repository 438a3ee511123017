/**
 * Reading a zone file for the zonefile provider (RFC 1035 §5.1): pure text in, entries out.
 *
 * Every entry keeps its physical lines verbatim, so a file can be written back byte for byte
 * with only tlsa's own lines added or removed (and, when asked, the SOA serial replaced in
 * place). Anything the tokenizer cannot read with certainty (an unbalanced parenthesis, an
 * unterminated quoted string) is refused with file:line: guessing there is how a writer ends
 * up appending a second copy of every record on each run.
 */
import { InputError } from '../src/errors.js';
import { parseRdataFields, ttlSeconds } from '../src/tlsa/presentation.js';
import { normaliseName, type TlsaRecord } from '../src/tlsa/record.js';
import { parseTxt } from './txt.js';

export const MANAGED_MARK = '; tlsa:managed';

interface Token {
  text: string;
  quoted: boolean;
  /** Offset of the physical line within the entry, and the token's columns in that line. */
  lineOffset: number;
  start: number;
  end: number;
}

export interface Entry {
  /** The physical lines of this logical entry, verbatim (without their '\n'). */
  lines: string[];
  /** 1-based line number of the entry's first line in its file. */
  line: number;
  record?: TlsaRecord;
  /** A TLSA record's TTL: its own, else the $TTL above it, else the last TTL written
   *  (RFC 1035 §5.1, RFC 2308 §4); undefined when the file says none (the server's default). */
  ttl?: number;
  /** Owner and type of a non-TLSA record, to see a CNAME at a TLSA owner name. */
  other?: { owner: string; type: string };
  /** A TXT record's value (its character-strings joined, escapes undone); absent when its
   *  bytes are not UTF-8 text tlsa could write back. The TTL is in `ttl`, as for TLSA. */
  txt?: string;
  /** A `$INCLUDE file [origin]` directive, with the origin the included file starts with. */
  include?: { path: string; origin?: string };
  /** Where the SOA serial is written, to replace exactly those characters. */
  soa?: { serial: string; lineOffset: number; start: number; end: number };
  managed: boolean;
}

interface Tokenized {
  first: number;
  count: number;
  tokens: Token[];
  comments: string[];
  /** A one-line TLSA record in the form tlsa writes (FAST_TLSA), not yet tokenized: read
   *  from its fields, or tokenized after all (tokensOf) when that reading fails. */
  fast?: RegExpExecArray;
}

/** `owner TTL IN TLSA usage selector matching hex [; comment]` on one line, without a
 *  character the tokenizer treats specially before the comment: the lines tlsa writes, tens
 *  of thousands in a fleet's zone, read without a token object per field. */
const FAST_TLSA =
  /^([^ \t\r;()"\\$][^ \t\r;()"\\]*)[ \t]+(\d+)[ \t]+IN[ \t]+TLSA[ \t]+(\d+)[ \t]+(\d+)[ \t]+(\d+)[ \t]+([0-9A-Fa-f]+)[ \t\r]*(;[\s\S]*)?$/;

/** What only the character loop of tokenize() reads: parentheses, quotes, escapes. */
const SPECIAL = /[()"\\]/;
const BLANK_SEPARATED = /[^ \t\r]+/g;

/** Split into logical entries: a newline inside parentheses does not end an entry. One entry
 *  at a time: the tokens of a whole file (tens of MB for 40,000 lines) are never held at once. */
function* tokenize(physical: string[], file: string, fastLines = true): Generator<Tokenized> {
  let i = 0;
  while (i < physical.length) {
    const first = i;
    const fast = fastLines ? FAST_TLSA.exec(physical[i]!) : null;
    if (fast) {
      i++;
      yield { first, count: 1, tokens: [], comments: [], fast };
      continue;
    }
    const tokens: Token[] = [];
    const comments: string[] = [];
    let open = -1; // line index of the open '(' or -1
    for (;;) {
      const line = physical[i]!;
      const lineOffset = i - first;
      // Before its first ';', nothing but blank-separated tokens (the usual record line): the
      // same tokens as the loop below gives, found by a regular expression. A quote or an
      // escape before the ';' may hide it, so such a line goes through the loop.
      const semi = line.indexOf(';');
      const code = semi < 0 ? line : line.slice(0, semi);
      if (!SPECIAL.test(code)) {
        BLANK_SEPARATED.lastIndex = 0;
        for (let m = BLANK_SEPARATED.exec(code); m; m = BLANK_SEPARATED.exec(code))
          tokens.push({
            text: m[0],
            quoted: false,
            lineOffset,
            start: m.index,
            end: m.index + m[0].length,
          });
        if (semi >= 0) comments.push(line.slice(semi));
        i++;
        if (open < 0) break;
        if (i >= physical.length)
          throw new InputError('"(" is never closed: the file ends inside it', file, open + 1);
        continue;
      }
      // A token is sliced from the line when it ends; only one with a backslash is built
      // character by character (a 40,000-line zone file built every hex digit one by one).
      let built: string | undefined;
      let start = -1;
      const flush = (end: number) => {
        if (start >= 0)
          tokens.push({
            text: built ?? line.slice(start, end),
            quoted: false,
            lineOffset,
            start,
            end,
          });
        built = undefined;
        start = -1;
      };
      for (let col = 0; col < line.length; col++) {
        const c = line[col]!;
        if (c === ' ' || c === '\t' || c === '\r') {
          flush(col);
          continue;
        }
        if (c === ';') {
          flush(col);
          comments.push(line.slice(col));
          break;
        }
        if (c === '(') {
          flush(col);
          if (open >= 0)
            throw new InputError(
              `nested "(" (the one at line ${open + 1} is still open)`,
              file,
              i + 1,
            );
          open = i;
          continue;
        }
        if (c === ')') {
          flush(col);
          if (open < 0) throw new InputError('")" without an opening "("', file, i + 1);
          open = -1;
          continue;
        }
        if (c === '"') {
          flush(col);
          let j = col + 1;
          while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
          if (j >= line.length) throw new InputError('unterminated quoted string', file, i + 1);
          tokens.push({
            text: line.slice(col + 1, j),
            quoted: true,
            lineOffset,
            start: col,
            end: j + 1,
          });
          col = j;
          continue;
        }
        if (start < 0) start = col;
        if (c === '\\') {
          if (col + 1 >= line.length)
            throw new InputError('"\\" at the end of a line', file, i + 1);
          built = (built ?? line.slice(start, col)) + line.slice(col, col + 2);
          col++;
          continue;
        }
        if (built !== undefined) built += c;
      }
      flush(line.length);
      i++;
      if (open < 0) break;
      if (i >= physical.length)
        throw new InputError('"(" is never closed: the file ends inside it', file, open + 1);
    }
    yield { first, count: i - first, tokens, comments };
  }
}

const CLASS = /^(IN|CH|HS|CS|CLASS\d+)$/i;

/** An owner name or $ORIGIN argument made absolute; why it cannot be, as an error. */
function absoluteName(name: string, origin: string | undefined, originHint: string): string {
  if (name === '@') {
    if (!origin) throw new SyntaxError(`"@" used without an $ORIGIN${originHint}`);
    return normaliseName(origin);
  }
  if (name.endsWith('.')) return normaliseName(name);
  if (!origin) throw new SyntaxError(`relative name "${name}" without an $ORIGIN${originHint}`);
  return normaliseName(`${name}.${origin}`);
}

export interface ParseOptions {
  /** The origin the file starts with (the provider's `origin` option, or an $INCLUDE's). */
  origin?: string;
  /** Added to "relative name without an $ORIGIN" messages: how to give one. */
  originHint?: string;
}

/** Parse a zone file into entries; throws InputError(file, line) on what it cannot read. */
export function parseZone(text: string, file: string, opts: ParseOptions = {}): Entry[] {
  const physical = text.split('\n');
  if (physical.at(-1) === '') physical.pop();
  const entries = tokenize(physical, file);
  // Without a return method: a parse error leaves the tokenizer open, to read on from there.
  const open: Iterable<Tokenized> = { [Symbol.iterator]: () => ({ next: () => entries.next() }) };
  try {
    return parseEntries(physical, open, file, opts);
  } catch (e) {
    // What the file cannot be split into (an unbalanced parenthesis, an open quote) anywhere in
    // it is the error, as it was when the whole file was tokenized before any entry was read.
    for (const _ of open);
    throw e;
  }
}

function parseEntries(
  physical: string[],
  tokenized: Iterable<Tokenized>,
  file: string,
  opts: ParseOptions,
): Entry[] {
  const hint = opts.originHint ?? '';
  let origin = opts.origin;
  // The owner a line starting with blanks inherits: a name, or why there is none.
  let previous: { owner?: string; error?: string } = {
    error: 'a record that starts with a blank has no previous owner name',
  };
  const entries: Entry[] = [];
  let defaultTtl: number | undefined;
  let lastTtl: number | undefined;
  for (const read of tokenized) {
    if (read.fast) {
      const entry = fastTlsa(read.fast, read.first, origin, hint);
      if (entry) {
        entries.push(entry);
        previous = { owner: entry.record!.owner };
        lastTtl = entry.ttl;
        continue;
      }
    }
    const { first, count, tokens, comments } = read.fast ? tokensOf(physical, read, file) : read;
    const lines = physical.slice(first, first + count);
    const entry: Entry = {
      lines,
      line: first + 1,
      managed: comments.some((c) => c.startsWith(MANAGED_MARK)),
    };
    entries.push(entry);
    if (tokens.length === 0) continue;
    const at = (t: Token) => first + t.lineOffset + 1;
    const fail = (t: Token, message: string): never => {
      throw new InputError(message, file, at(t));
    };
    const c0 = lines[0]!.charCodeAt(0);
    const startsBlank = c0 === 32 || c0 === 9; // ' ' or '\t'
    const head = tokens[0]!;
    if (!startsBlank && !head.quoted && head.text.startsWith('$')) {
      const directive = head.text.toUpperCase();
      const arg = tokens[1];
      if (directive === '$ORIGIN') {
        if (!arg) fail(head, '$ORIGIN needs a domain name');
        try {
          origin = absoluteName(arg!.text, origin, hint);
        } catch (e) {
          fail(arg!, (e as Error).message);
        }
      } else if (directive === '$TTL') {
        if (!arg || ttlSeconds(arg.text) === undefined)
          fail(head, '$TTL needs a TTL in seconds (or with units: 1h, 2d)');
        defaultTtl = ttlSeconds(arg!.text);
      } else if (directive === '$INCLUDE') {
        if (!arg) fail(head, '$INCLUDE needs a file name');
        let includeOrigin = origin;
        if (tokens[2]) {
          try {
            includeOrigin = absoluteName(tokens[2].text, origin, hint);
          } catch (e) {
            fail(tokens[2], (e as Error).message);
          }
        }
        entry.include = { path: arg!.text, ...(includeOrigin ? { origin: includeOrigin } : {}) };
      }
      // Other directives ($GENERATE) are kept as they are; they do not move the origin.
      continue;
    }
    let i = startsBlank ? 0 : 1;
    let owner: { owner?: string; error?: string } = previous;
    if (!startsBlank) {
      try {
        owner = { owner: absoluteName(head.text, origin, hint) };
      } catch (e) {
        owner = { error: (e as Error).message };
      }
      previous = owner;
    }
    let ttl: number | undefined;
    for (let k = 0; k < 2 && i < tokens.length; k++) {
      const t = tokens[i]!;
      if (t.quoted) continue;
      const seconds = ttlSeconds(t.text);
      if (seconds !== undefined) ttl = seconds;
      if (seconds !== undefined || CLASS.test(t.text)) i++;
    }
    if (ttl !== undefined) lastTtl = ttl;
    const typeToken = tokens[i];
    if (!typeToken || typeToken.quoted || !/^[A-Za-z][A-Za-z0-9-]*$/.test(typeToken.text)) {
      fail(
        typeToken ?? tokens.at(-1)!,
        typeToken ? `"${typeToken.text}" is not a record type` : 'a record without a type',
      );
    }
    const type = typeToken!.text.toUpperCase();
    const rdata = tokens.slice(i + 1);
    if (type === 'TLSA' || type === 'TYPE52') {
      if (!owner.owner) fail(head, owner.error ?? 'TLSA record without an owner name');
      const quoted = rdata.find((t) => t.quoted);
      if (quoted) fail(quoted, 'TLSA data cannot be a quoted string');
      try {
        // Spelled out, not spread: the same keys in the same order, built without a copy loop.
        const r = parseRdataFields(rdata.map((t) => t.text));
        entry.record = {
          owner: owner.owner!,
          usage: r.usage,
          selector: r.selector,
          matching: r.matching,
          data: r.data,
        };
        const known = ttl ?? defaultTtl ?? lastTtl;
        if (known !== undefined) entry.ttl = known;
      } catch (e) {
        fail(rdata[0] ?? typeToken!, (e as Error).message);
      }
    } else if (type === 'SOA') {
      // MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM
      const serial = rdata[2];
      if (rdata.length !== 7 || !serial)
        fail(
          typeToken!,
          `SOA needs 7 fields (mname rname serial refresh retry expire minimum), found ${rdata.length}`,
        );
      entry.soa = {
        serial: serial!.text,
        lineOffset: serial!.lineOffset,
        start: serial!.start,
        end: serial!.end,
      };
      if (owner.owner) entry.other = { owner: owner.owner, type };
    } else if (owner.owner) {
      entry.other = { owner: owner.owner, type };
      if (type === 'TXT') {
        // Each token again in quotes (a bare one holds no '"'), its escapes as written.
        const value = parseTxt(rdata.map((t) => `"${t.text}"`).join(' '), { latin1: true });
        if (value !== undefined && !value.includes('\uFFFD')) entry.txt = value;
        const known = ttl ?? defaultTtl ?? lastTtl;
        if (known !== undefined) entry.ttl = known;
      }
    }
  }
  return entries;
}

/** The entry of a FAST_TLSA line, as the tokens would give it; undefined when reading it
 *  fails (a relative owner without an origin, bad data): the tokens then say where and why. */
function fastTlsa(
  m: RegExpExecArray,
  first: number,
  origin: string | undefined,
  hint: string,
): Entry | undefined {
  const ttl = ttlSeconds(m[2]!);
  if (ttl === undefined) return undefined;
  try {
    const owner = absoluteName(m[1]!, origin, hint);
    const r = parseRdataFields([m[3]!, m[4]!, m[5]!, m[6]!]);
    return {
      lines: [m.input],
      line: first + 1,
      managed: m[7]?.startsWith(MANAGED_MARK) ?? false,
      record: {
        owner,
        usage: r.usage,
        selector: r.selector,
        matching: r.matching,
        data: r.data,
      },
      ttl,
    };
  } catch {
    return undefined;
  }
}

/** A FAST_TLSA line tokenized after all. */
function tokensOf(physical: string[], read: Tokenized, file: string): Tokenized {
  const line = physical[read.first]!;
  // The line alone: its one entry, with no special character before the comment.
  const [own] = tokenize([line], file, false);
  return { ...own!, first: read.first };
}

/** `entries` with the lines tlsa wrote or rewrote (entries not among `read`) ending as the
 *  file's lines do: CR LF when most lines of `read` end so (the '\r' stays on each line read,
 *  render() adds the '\n'), else LF. Lines read are kept byte for byte. */
export function withFileEndings(entries: Entry[], read: readonly Entry[]): Entry[] {
  const lines = read.flatMap((e) => e.lines);
  const crlf = lines.filter((l) => l.endsWith('\r')).length * 2 > lines.length;
  if (!crlf) return entries;
  const kept = new Set(read);
  return entries.map((e) =>
    kept.has(e) || e.lines.every((l) => l.endsWith('\r'))
      ? e
      : { ...e, lines: e.lines.map((l) => (l.endsWith('\r') ? l : `${l}\r`)) },
  );
}

export function render(entries: Entry[]): string {
  const out = entries.flatMap((e) => e.lines).join('\n');
  return out ? `${out}\n` : '';
}

const ownerOf = (e: Entry) => e.record?.owner ?? e.other?.owner;
const startsBlank = (e: Entry) => /^[ \t]/.test(e.lines[0] ?? '');

/** `entries` without `drop`; a record line that inherited its owner from a dropped line gets
 *  that owner written in front (its other bytes stay). */
export function withoutEntries(entries: Entry[], drop: Set<Entry>): Entry[] {
  const out: Entry[] = [];
  let orphaned = false;
  for (const e of entries) {
    const owner = ownerOf(e);
    if (drop.has(e)) {
      // Only a line that names its owner passes it on to the blank-led lines after it.
      if (owner && !startsBlank(e)) orphaned = true;
      continue;
    }
    if (owner && !startsBlank(e)) orphaned = false;
    if (owner && startsBlank(e) && orphaned) {
      out.push({ ...e, lines: [`${owner}${e.lines[0]}`, ...e.lines.slice(1)] });
      orphaned = false;
      continue;
    }
    out.push(e);
  }
  return out;
}
