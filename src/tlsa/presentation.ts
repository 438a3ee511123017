/** Zone-file presentation of TLSA records: formatting and parsing (RFC 6698 §2.2, RFC 7218). */
import {
  MATCHING_NAMES,
  SELECTOR_NAMES,
  USAGE_NAMES,
  normaliseName,
  rdataText,
  type MatchingType,
  type Selector,
  type TlsaRecord,
  type Usage,
} from './record.js';

export function formatRecord(r: TlsaRecord, ttl: number): string {
  return `${r.owner} ${ttl} IN TLSA ${rdataText(r)}`;
}

function fieldValue<T extends number>(
  token: string,
  names: Record<T, string>,
  what: string,
  max: number,
): T {
  if (/^\d+$/.test(token)) {
    const v = Number(token);
    if (v > max) throw new SyntaxError(`TLSA ${what} ${v} is not defined (0-${max})`);
    return v as T;
  }
  for (const [k, name] of Object.entries(names) as [string, string][]) {
    if (name.toLowerCase() === token.toLowerCase()) return Number(k) as T;
  }
  // RFC 7218 also names the private-use values; we accept only the defined ones.
  throw new SyntaxError(
    `"${token}" is not a TLSA ${what} (number or one of ${Object.values(names).join(', ')})`,
  );
}

/** Parse the RDATA part: `3 1 1 <hex>` or `DANE-EE SPKI SHA2-256 <hex>`, hex may contain spaces,
 *  or the RFC 3597 generic form `\# LEN HEX`. */
export function parseRdata(text: string): Omit<TlsaRecord, 'owner'> {
  const tokens = text.trim().split(/\s+/).filter(Boolean);
  if (tokens[0] === '\\#') {
    const len = Number(tokens[1]);
    const hex = tokens.slice(2).join('').toLowerCase();
    if (!/^[0-9a-f]*$/.test(hex) || hex.length !== len * 2 || len < 4) {
      throw new SyntaxError(`generic TLSA RDATA "\\# ${tokens[1]} …" is malformed`);
    }
    const bytes = Buffer.from(hex, 'hex');
    return rdataFromFields(
      String(bytes[0]),
      String(bytes[1]),
      String(bytes[2]),
      bytes.subarray(3).toString('hex'),
    );
  }
  if (tokens.length < 4)
    throw new SyntaxError(
      `TLSA RDATA needs usage, selector, matching type and data: "${text.trim()}"`,
    );
  return rdataFromFields(tokens[0]!, tokens[1]!, tokens[2]!, tokens.slice(3).join(''));
}

/** parseRdata of these fields joined by blanks, without joining and splitting them again
 *  (a zone file's tokens: thousands of lines per file). */
export function parseRdataFields(fields: readonly string[]): Omit<TlsaRecord, 'owner'> {
  if (fields.length < 4 || fields[0] === '\\#' || fields.some((f) => !f || /\s/.test(f)))
    return parseRdata(fields.join(' '));
  return rdataFromFields(fields[0]!, fields[1]!, fields[2]!, fields.slice(3).join(''));
}

function rdataFromFields(
  u: string,
  s: string,
  m: string,
  hexIn: string,
): Omit<TlsaRecord, 'owner'> {
  const usage = fieldValue<Usage>(u, USAGE_NAMES, 'usage', 3);
  const selector = fieldValue<Selector>(s, SELECTOR_NAMES, 'selector', 1);
  const matching = fieldValue<MatchingType>(m, MATCHING_NAMES, 'matching type', 2);
  const data = hexIn.toLowerCase();
  if (data.length % 2 !== 0 || !/^[0-9a-f]+$/.test(data))
    throw new SyntaxError(`TLSA association data is not hex: "${hexIn.slice(0, 40)}"`);
  return { usage, selector, matching, data };
}

export interface ParsedLine {
  owner: string;
  ttl?: number;
  record: TlsaRecord;
}

/** Parse one full presentation line `owner [ttl] [IN] TLSA rdata` (owner absolute, or relative
 *  to `origin`). Returns undefined when the line is not a TLSA record. */
export function parseRecordLine(
  line: string,
  origin?: string,
  previousOwner?: string,
): ParsedLine | undefined {
  const text = stripComment(line).replace(/[()]/g, ' ');
  if (!text.trim()) return undefined;
  const startsBlank = /^\s/.test(text);
  const tokens = text.trim().split(/\s+/);
  let i = startsBlank ? 0 : 1;
  let ttl: number | undefined;
  for (let k = 0; k < 2 && i < tokens.length; k++) {
    const t = tokens[i]!;
    const seconds = ttlSeconds(t);
    if (seconds !== undefined) {
      ttl = seconds;
      i++;
    } else if (/^(IN|CH|HS|CS|CLASS\d+)$/i.test(t)) i++;
  }
  // Only a TLSA line needs its owner resolved: an SOA written as "@" in a file without
  // $ORIGIN (the server supplies the origin) must not stop us from reading the file.
  const type = tokens[i]?.toUpperCase();
  if (type !== 'TLSA' && type !== 'TYPE52') return undefined;
  const owner = startsBlank ? previousOwner : absolutise(tokens[0]!, origin);
  if (!owner) throw new SyntaxError('TLSA record without an owner name');
  const rdata = parseRdata(tokens.slice(i + 1).join(' '));
  return { owner, ...(ttl !== undefined ? { ttl } : {}), record: { owner, ...rdata } };
}

/** A zone-file TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`). */
export function ttlSeconds(token: string): number | undefined {
  if (/^\d+$/.test(token)) return Number(token);
  if (!/^(\d+[smhdw])+$/i.test(token)) return undefined;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const [, n, u] of token.toLowerCase().matchAll(/(\d+)([smhdw])/g))
    total += Number(n) * unit[u!]!;
  return total;
}

export function absolutise(name: string, origin?: string): string {
  if (name === '@') {
    if (!origin) throw new SyntaxError('"@" used without an $ORIGIN');
    return normaliseName(origin);
  }
  if (name.endsWith('.')) return normaliseName(name);
  if (!origin) throw new SyntaxError(`relative name "${name}" without an $ORIGIN`);
  return normaliseName(`${name}.${normaliseName(origin)}`);
}

/** Remove a `;` comment that is not inside a quoted string. */
export function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === ';' && !quoted) return line.slice(0, i);
  }
  return line;
}
