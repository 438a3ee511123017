/**
 * The kit for the TXT capability (contract.ts TxtRecords, used by ACME DNS-01): TXT values to
 * and from the presentation text APIs and zone files hold, the identity of a record within its
 * RRset, the arguments checked once, and the messages every adapter words alike.
 *
 * A value is the text of one TXT record: its character-strings joined (RFC 7208 §3.3 reads
 * them so; a value over 255 bytes is written as several strings of at most 255). Foreign
 * records are read the same way and matched exactly (case and all): a removal never takes a
 * record whose joined text is not one of the named values.
 */
import { EXIT } from '../src/errors.js';
import { normaliseName } from '../src/tlsa/record.js';
import { ProviderError } from './contract.js';
import type { SetWant } from './kit-rrset.js';

/** Longest character-string (RFC 1035 §3.3: a length byte). */
const MAX_STRING = 255;

/** How \-digit escapes count: three decimal digits (RFC 1035 §5.1, BIND, deSEC, Cloudflare)
 *  or three octal digits (Route 53). */
export type Escapes = 'decimal' | 'octal';

/** A value as presentation text: each ≤255-byte piece of its UTF-8 in double quotes, `"` and
 *  `\` escaped with `\`, bytes outside printable ASCII as three-digit escapes. ASCII only, so
 *  it survives any encoding of a zone file. */
export function quoteTxt(value: string, escapes: Escapes = 'decimal'): string {
  const bytes = Buffer.from(value, 'utf8');
  const strings: string[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += MAX_STRING) {
    let s = '';
    for (const b of bytes.subarray(i, i + MAX_STRING)) {
      if (b === 0x22 || b === 0x5c) s += `\\${String.fromCharCode(b)}`;
      else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
      else s += `\\${b.toString(escapes === 'octal' ? 8 : 10).padStart(3, '0')}`;
    }
    strings.push(`"${s}"`);
  }
  return strings.join(' ');
}

/**
 * The value of TXT presentation text (quoted or bare character-strings, joined), or undefined
 * when it does not parse (an unterminated quote, a bad escape, nothing at all). `latin1`: each
 * character of `text` is one byte (a zone file read as latin1); otherwise characters are
 * UTF-8 encoded (JSON from an API).
 */
export function parseTxt(
  text: string,
  opts: { escapes?: Escapes; latin1?: boolean } = {},
): string | undefined {
  const base = opts.escapes === 'octal' ? 8 : 10;
  const digit = base === 8 ? /^[0-7]{3}$/ : /^\d{3}$/;
  const bytes: number[] = [];
  const put = (c: string) => {
    if (opts.latin1) bytes.push(c.charCodeAt(0) & 0xff);
    else bytes.push(...Buffer.from(c, 'utf8'));
  };
  let strings = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
      continue;
    }
    const quoted = c === '"';
    if (quoted) i++;
    strings++;
    for (;;) {
      if (i >= text.length) {
        if (quoted) return undefined;
        break;
      }
      const ch = text[i]!;
      if (quoted ? ch === '"' : /[\s"]/.test(ch)) {
        if (quoted) i++;
        break;
      }
      if (ch === '\\') {
        const three = text.slice(i + 1, i + 4);
        if (digit.test(three)) {
          const n = Number.parseInt(three, base);
          if (n > 255) return undefined;
          bytes.push(n);
          i += 4;
        } else if (i + 1 < text.length) {
          put(text[i + 1]!);
          i += 2;
        } else return undefined;
        continue;
      }
      put(ch);
      i++;
    }
  }
  return strings ? Buffer.from(bytes).toString('utf8') : undefined;
}

/** A record's identity within its RRset, from the API's text: the value written as quoteTxt
 *  would write it, or (text that does not parse) the text itself, never matched by a value. */
export const txtKeyOf =
  (escapes: Escapes = 'decimal') =>
  (content: string): string => {
    const value = parseTxt(content, { escapes });
    return value === undefined ? `raw:${content}` : quoteTxt(value, escapes);
  };

/** One owner's TXT change as the RRset kit (kit-rrset.ts) takes it: `add` values as the
 *  contents to write, `remove` values not also added. */
export function txtWant(
  owner: string,
  change: { add?: string[]; remove?: string[] },
  ttl: number,
  escapes: Escapes = 'decimal',
): SetWant {
  const addKeys = [...new Set((change.add ?? []).map((v) => quoteTxt(v, escapes)))];
  const removeKeys = new Set((change.remove ?? []).map((v) => quoteTxt(v, escapes)));
  for (const k of addKeys) removeKeys.delete(k);
  return { owner, addKeys, removeKeys, ttl };
}

/** The arguments of add()/remove(), checked before anything is read: the owner normalised
 *  (rule 5), values that are strings (each once), a DNS TTL. */
export function txtArgs(
  provider: string,
  ownerIn: string,
  values: unknown,
  ttl?: number,
): { owner: string; values: string[] } {
  let owner: string;
  try {
    owner = normaliseName(ownerIn);
  } catch (e) {
    throw new ProviderError(provider, `TXT owner: ${(e as Error).message}`);
  }
  if (!Array.isArray(values) || values.some((v) => typeof v !== 'string'))
    throw new ProviderError(provider, `TXT values at ${owner} must be a list of strings`);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff))
    throw new ProviderError(provider, `TTL ${ttl} for TXT at ${owner} is not a DNS TTL`);
  return { owner, values: [...new Set(values as string[])] };
}

/** The CNAME refusal for TXT (contract rule 6): named, never replaced. DNS-01 follows a CNAME
 *  at `_acme-challenge`, so the way out is to publish at its target. */
export function txtCnameError(
  provider: string,
  owner: string,
  where: string,
  target?: string,
): ProviderError {
  return new ProviderError(
    provider,
    `${owner} has a CNAME${target ? ` (to ${target})` : ''} in ${where}; TXT records cannot sit beside it, and tlsa does not overwrite it: remove the CNAME, or publish the TXT record at its target (ACME DNS-01 follows the CNAME)`,
  );
}

/**
 * Run one TXT operation so that what fails names the owner (rule 10): a ProviderError (or
 * another provider failure, exit 3) whose message does not name it is said again with
 * "<what> TXT at <owner>:" in front. Bad input (exit 2, a zone file tlsa cannot read) passes.
 */
export async function namingOwner<T>(
  provider: string,
  owner: string,
  what: string,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const err = e as Error & { exitCode?: number };
    if (err?.exitCode !== EXIT.provider || err.message.includes(owner)) throw e;
    const said =
      e instanceof ProviderError && err.message.startsWith(`${provider}: `)
        ? err.message.slice(provider.length + 2)
        : err.message;
    throw new ProviderError(provider, `${what} TXT at ${owner}: ${said}`, { cause: e });
  }
}

/** Adding values that are all there already is a no-op (TxtRecords.add): the RRset's TTL is
 *  not rewritten for them. Call before nextRRset(); returns the want to pass it. */
export function presentKeepsTtl<W extends SetWant>(
  want: W,
  now: { ttl?: number; records: Array<{ content: string }> } | undefined,
  keyOf: (content: string) => string,
): W {
  if (!now || now.ttl === undefined || !want.addKeys.length) return want;
  const present = new Set(now.records.map((r) => keyOf(r.content)));
  return want.addKeys.every((k) => present.has(k)) ? { ...want, ttl: now.ttl } : want;
}
