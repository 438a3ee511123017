/** A fast reader for the plain block YAML that configurations are written in: block mappings
 *  and sequences, one-line flow collections, plain and one-line quoted scalars, comments. It
 *  gives the value the `yaml` package gives (YAML 1.2, core schema, as load.ts reads it), or
 *  undefined for anything else — anchors, tags, block scalars, multi-line scalars, duplicate
 *  keys, odd keys or numbers, errors — which then go the `yaml` package's way, with its
 *  positions and messages. A fleet's config of ten thousand services is read about ten times
 *  faster than through `yaml`'s document, and without building tens of MB of nodes. */

/** Thrown (and caught below) when the text leaves the subset: the caller uses `yaml`. */
const OUTSIDE = Symbol('outside the plain subset');

function outside(): never {
  throw OUTSIDE;
}

/** Any character but these is left to `yaml`: tabs, CR, BOM, control and other non-printable
 *  characters, the Unicode line separators. (Astral characters are surrogate pairs here.) */
const UNREAD_CHAR = /[^\n -~\u00a0-\u2027\u202a-\ufefe\uff00-\ufffd]/;

/** A mapping key read as is: a plain string that no core-schema tag turns into something else
 *  (checked with plainScalar as well); `<<` never matches, `__proto__` is refused below. */
const PLAIN_KEY = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;

/** YAML's limit on an implicit key (1024 characters), kept well inside. */
const MAX_KEY_LENGTH = 1000;

/** Flow collections nested deeper are left to `yaml`, whose recursive parser refuses them
 *  once it runs out of stack (≈ 900 levels here, fewer on a deeper stack). */
const MAX_FLOW_DEPTH = 64;

/** Plain scalars that start with an indicator are left to `yaml` (anchors, tags, block
 *  scalars, aliases, directives, explicit keys, reserved characters, `- ` entries); a `-`
 *  before other text (`-5`, `-x`) starts a plain scalar. */
const INDICATOR = /^(?:[?:,[\]{}#&*!|>'"%@`]|-(?: |$))/;

/** Only a plain scalar starting so can be read as other than a string by the core schema. */
const MAYBE_NOT_STRING = /^[-+.~0-9nNtTfF]/;

/** The core schema's tags (yaml's schema/core), in the order `yaml` tries them. */
function plainScalar(s: string): unknown {
  if (s !== '' && !MAYBE_NOT_STRING.test(s)) return s;
  if (/^(?:~|[Nn]ull|NULL)?$/.test(s)) return null;
  if (/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/.test(s)) return s[0] === 't' || s[0] === 'T';
  if (/^0o[0-7]+$/.test(s)) return Number.parseInt(s.substring(2), 8);
  if (/^[-+]?[0-9]+$/.test(s)) return Number.parseInt(s, 10);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return Number.parseInt(s.substring(2), 16);
  if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s))
    return s.slice(-3).toLowerCase() === 'nan'
      ? Number.NaN
      : s[0] === '-'
        ? Number.NEGATIVE_INFINITY
        : Number.POSITIVE_INFINITY;
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s)) return Number.parseFloat(s);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)) return Number.parseFloat(s);
  return s;
}

function mappingKey(s: string): string {
  if (
    s.length > MAX_KEY_LENGTH ||
    !PLAIN_KEY.test(s) ||
    s === '__proto__' ||
    typeof plainScalar(s) !== 'string'
  )
    outside();
  return s;
}

/** YAML's white space is the space (tabs are refused above); trimEnd() would also eat
 *  no-break and other Unicode spaces, which belong to a scalar. */
function trimSpaces(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 32) end--;
  return s.slice(0, end);
}

/** What may follow a value on its line: spaces, then a comment after at least one space. */
function restIsComment(text: string, from: number): boolean {
  let i = from;
  while (text[i] === ' ') i++;
  return i === text.length || (text[i] === '#' && i > from);
}

/** A quoted scalar on one line (no escapes): its value and where it ends. */
function quoted(text: string, start: number): { value: string; end: number } {
  const q = text[start]!;
  if (q === '"') {
    const close = text.indexOf('"', start + 1);
    if (close < 0) outside();
    const value = text.slice(start + 1, close);
    if (value.includes('\\')) outside();
    return { value, end: close + 1 };
  }
  let value = '';
  let i = start + 1;
  for (;;) {
    const close = text.indexOf("'", i);
    if (close < 0) outside();
    value += text.slice(i, close);
    if (text[close + 1] !== "'") return { value, end: close + 1 };
    value += "'";
    i = close + 2;
  }
}

/** A flow value inside [...] or {...}: quoted, nested, or plain up to the next `,`, `]`, `}`. */
function flowValue(text: string, start: number, depth: number): { value: unknown; end: number } {
  const c = text[start];
  if (c === '"' || c === "'") return quoted(text, start);
  if (c === '[' || c === '{') return flowCollection(text, start, depth + 1);
  let end = start;
  while (end < text.length && !',[]{}'.includes(text[end]!)) end++;
  const raw = trimSpaces(text.slice(start, end));
  if (!raw || INDICATOR.test(raw) || raw.includes(':') || raw.includes(' #')) outside();
  return { value: plainScalar(raw), end: start + raw.length };
}

function skipSpaces(text: string, i: number): number {
  while (text[i] === ' ') i++;
  return i;
}

/** `[a, b]` or `{k: v, …}` on one line, `depth` levels deep; no empty entries, no trailing
 *  comma. */
function flowCollection(
  text: string,
  start: number,
  depth: number,
): { value: unknown; end: number } {
  if (depth > MAX_FLOW_DEPTH) outside();
  const isSeq = text[start] === '[';
  const close = isSeq ? ']' : '}';
  const seq: unknown[] = [];
  const map: Record<string, unknown> = {};
  let i = skipSpaces(text, start + 1);
  if (text[i] === close) return { value: isSeq ? seq : map, end: i + 1 };
  for (;;) {
    if (isSeq) {
      const item = flowValue(text, i, depth);
      seq.push(item.value);
      i = item.end;
    } else {
      let k = i;
      while (k < text.length && text[k] !== ':' && !',[]{}'.includes(text[k]!)) k++;
      const key = mappingKey(text.slice(i, k));
      if (text[k] !== ':' || text[k + 1] !== ' ' || Object.hasOwn(map, key)) outside();
      const item = flowValue(text, skipSpaces(text, k + 1), depth);
      map[key] = item.value;
      i = item.end;
    }
    i = skipSpaces(text, i);
    if (text[i] === close) return { value: isSeq ? seq : map, end: i + 1 };
    if (text[i] !== ',') outside();
    i = skipSpaces(text, i + 1);
  }
}

/** A value written on the line of its key or `- `: a scalar or a one-line flow collection. */
function inlineValue(text: string): unknown {
  const c = text[0];
  if (c === '"' || c === "'" || c === '[' || c === '{') {
    const { value, end } = c === '[' || c === '{' ? flowCollection(text, 0, 1) : quoted(text, 0);
    if (!restIsComment(text, end)) outside();
    return value;
  }
  if (INDICATOR.test(text)) outside();
  const comment = text.indexOf(' #');
  const raw = trimSpaces(comment < 0 ? text : text.slice(0, comment));
  if (raw.includes(': ') || raw.endsWith(':')) outside();
  return plainScalar(raw);
}

/** In `key: value` or `key:`, the index of the colon (the key is checked by mappingKey);
 *  -1 when the line is not so. */
function keyColon(text: string): number {
  if (/^["'[{]/.test(text)) return -1;
  const colon = text.indexOf(':');
  if (colon <= 0) return -1;
  return colon + 1 === text.length || text.charCodeAt(colon + 1) === 32 ? colon : -1;
}

const SEQUENCE_ENTRY = /^-(?: |$)/;

/** Reads line by line: `indent` and `text` (without the indent and trailing spaces) are those
 *  of the current line that holds more than a comment; indent is -1 at the end of the text. */
class BlockReader {
  indent = -1;
  text = '';
  private pos = 0;
  private lines = 0;

  constructor(private readonly source: string) {
    this.advance();
  }

  /** Moves to the next line that holds more than a comment. */
  advance(): void {
    const src = this.source;
    while (this.pos < src.length) {
      const lineStart = this.pos;
      let end = src.indexOf('\n', lineStart);
      if (end < 0) end = src.length;
      this.pos = end + 1;
      let start = lineStart;
      while (src.charCodeAt(start) === 32) start++;
      if (start === end || src.charCodeAt(start) === 35 /* # */) continue;
      const indent = start - lineStart;
      while (src.charCodeAt(end - 1) === 32) end--;
      const text = src.slice(start, end);
      if (indent === 0 && /^(?:---|\.\.\.)(?:\s|$)/.test(text)) {
        // A leading `---` (optionally with a comment) opens the one document; any other marker
        // (a second document, `...`) is left to `yaml`.
        if (this.lines === 0 && text.startsWith('---') && restIsComment(text, 3)) continue;
        outside();
      }
      this.lines++;
      this.indent = indent;
      this.text = text;
      return;
    }
    this.indent = -1;
    this.text = '';
  }

  document(): unknown {
    if (this.indent < 0) outside();
    const value = this.node(this.indent);
    if (this.indent >= 0) outside();
    return value;
  }

  private node(indent: number): unknown {
    return SEQUENCE_ENTRY.test(this.text) ? this.sequence(indent) : this.mapping(indent);
  }

  private mapping(indent: number): Record<string, unknown> {
    const map: Record<string, unknown> = {};
    while (this.indent >= indent) {
      if (this.indent > indent) outside();
      const line = this.text;
      const colon = keyColon(line);
      if (colon < 0) outside();
      const key = mappingKey(line.slice(0, colon));
      if (Object.hasOwn(map, key)) outside();
      const rest = line.slice(skipSpaces(line, colon + 1));
      this.advance();
      if (rest === '' || rest[0] === '#') {
        if (this.indent > indent) map[key] = this.node(this.indent);
        else if (this.indent === indent && SEQUENCE_ENTRY.test(this.text))
          map[key] = this.sequence(indent);
        else map[key] = null;
      } else {
        map[key] = inlineValue(rest);
        this.endOfEntry(indent);
      }
    }
    return map;
  }

  private sequence(indent: number): unknown[] {
    const seq: unknown[] = [];
    while (this.indent >= indent) {
      if (this.indent > indent) outside();
      // Anything else at this indent ends the sequence: the next key of the mapping whose value
      // it is (`key:` then `- item` at the key's indent), else refused by the caller.
      if (!SEQUENCE_ENTRY.test(this.text)) break;
      const after = skipSpaces(this.text, 1);
      const rest = this.text.slice(after);
      if (rest === '' || rest[0] === '#') {
        this.advance();
        seq.push(this.indent > indent ? this.node(this.indent) : null);
      } else if (keyColon(rest) > 0) {
        // `- key: value`: a mapping whose keys stand at the column of this first one.
        this.indent = indent + after;
        this.text = rest;
        seq.push(this.mapping(indent + after));
      } else if (SEQUENCE_ENTRY.test(rest)) {
        outside();
      } else {
        this.advance();
        seq.push(inlineValue(rest));
        this.endOfEntry(indent);
      }
    }
    return seq;
  }

  /** After a value on its own line, the next line may not be deeper (a continued scalar). */
  private endOfEntry(indent: number): void {
    if (this.indent > indent) outside();
  }
}

/** The value of `text` if it lies in the plain subset, else undefined (use `yaml`). */
export function readPlainYaml(text: string): unknown {
  if (UNREAD_CHAR.test(text)) return undefined;
  try {
    return new BlockReader(text).document();
  } catch (e) {
    // Nesting too deep for this recursive reader (a stack overflow) is left to yaml, as it was.
    if (e === OUTSIDE || e instanceof RangeError) return undefined;
    throw e;
  }
}
