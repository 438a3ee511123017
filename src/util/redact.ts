/** Secrets read from env or files are registered here so that no message can print them: not
 *  as they are, nor in the forms a server or library may echo them in (URL- and form-encoded,
 *  JSON-escaped, base64 alone or inside a wrapper such as basic auth's "user:secret"). */
const secrets = new Set<string>();
/** Longest first, so a whole encoded form is replaced before a part of it could be. */
let patterns: string[] = [];

/** Encoded forms shorter than this are not redacted on their own: a few base64 characters
 *  could occur by chance in the hex of a record. */
const MIN_DERIVED = 8;

export function registerSecret(value: string): void {
  if (value.length < 4 || secrets.has(value)) return;
  secrets.add(value);
  const forms = new Set([value, ...encodedForms(value).filter((f) => f.length >= MIN_DERIVED)]);
  patterns = [...new Set([...patterns, ...forms])].sort((a, b) => b.length - a.length);
}

export function redact(text: string): string {
  let out = text;
  for (const p of patterns) if (out.includes(p)) out = out.split(p).join('***');
  return out;
}

/** The forms of a secret other than itself that may show up in a message. */
export function encodedForms(value: string): string[] {
  const uri = encodeURIComponent(value);
  // application/x-www-form-urlencoded (URLSearchParams): also escapes !'()~, space is "+".
  const form = new URLSearchParams({ k: value }).toString().slice(2);
  const out = [
    uri,
    uri.replace(/%20/g, '+'),
    form,
    // Percent-escapes in lower case, as some servers write them.
    ...[uri, form].map((f) => f.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())),
    JSON.stringify(value).slice(1, -1),
    ...base64Forms(Buffer.from(value, 'utf8')),
  ];
  return [...new Set(out)].filter((f) => f !== value);
}

/** The secret base64-encoded on its own, and the part of the encoding that depends only on
 *  the secret's bytes when something precedes it ("user:secret" in basic auth): for each of
 *  the three alignments the secret can start at, the characters encoding its bytes alone. */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  const whole = bytes.toString('base64');
  out.push(whole, whole.replace(/=+$/, ''));
  for (let shift = 0; shift < 3; shift++) {
    const b64 = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    const first = Math.ceil((shift * 8) / 6);
    const end = Math.floor(((shift + bytes.length) * 8) / 6);
    out.push(b64.slice(first, end));
  }
  return out.flatMap((f) => [f, f.replace(/\+/g, '-').replace(/\//g, '_')]);
}

/** `value` with every string in it (nested in arrays and plain objects) redacted, for messages
 *  that are structured data: a log line in JSON, where a secret could sit in any field. */
export function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redact(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (Array.isArray(value)) return value.map(redactValue);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v)]));
  return value;
}
