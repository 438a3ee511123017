/**
 * desec-api-fake: a FAKE of the deSEC DNS API (https://desec.io/api/v1), for tests only. It is
 * not deSEC and proves nothing about deSEC itself; it follows deSEC's published contract
 * (desec.readthedocs.io: dns/domains, dns/rrsets, rate-limits, auth/tokens) for the parts the
 * desec provider uses, with error bodies shaped as desec-stack's serializers and Django REST
 * framework produce them:
 *
 *  - `Authorization: Token <secret>`; no header → 401 `{"detail": "Authentication credentials
 *    were not provided."}`, a wrong token → 401 `{"detail": "Invalid token."}` (both with
 *    `WWW-Authenticate: Token`). A token listed in `readOnlyTokens` authenticates but may not
 *    write (as a token whose scoping policy has `perm_write: false`): 403 `{"detail": "You do
 *    not have permission to perform this action."}`.
 *  - `GET /domains/` (newest first; `?owns_qname=NAME` gives the one domain responsible for
 *    NAME, or `[]`), `GET /domains/{name}/`; an unknown domain → 404 `{"detail": "Not found."}`.
 *    Domain objects carry `minimum_ttl` (default 3600).
 *  - `GET /domains/{name}/rrsets/` with `?subname=` and `?type=` filters; `POST`, `PATCH`, `PUT`
 *    of one RRset object or of a list (bulk, atomic: all or nothing; `records: []` deletes);
 *    `GET|PATCH|PUT|DELETE /domains/{name}/rrsets/{subname}/{type}/` (`@` or `...` for the
 *    apex). A missing RRset on the detail endpoint → 404.
 *  - Validation: ttl ≥ the domain's minimum_ttl (`{"ttl": ["Ensure this value is greater than or
 *    equal to 3600."]}`) and ≤ 604800; records are canonicalised per type (TLSA: `u s m hex`,
 *    lower-case hex, no spaces; TXT: every string quoted, else "Data for TXT records must be
 *    given using quotation marks.", written back with RFC 1035 decimal escapes as dnspython
 *    does) and malformed ones rejected ("Cannot parse hexadecimal or base64
 *    record contents", "Record content for type TLSA malformed: expecting an integer");
 *    duplicates after canonicalisation are rejected; CNAME exclusivity: `{"non_field_errors":
 *    ["RRset with conflicting type present: database (CNAME). (No other RRsets are allowed
 *    alongside CNAME.)"]}`. Bulk errors are a list with one object per item (`{}` when fine).
 *  - Pagination (cursor): more than `pageSize` (500) results without `?cursor=` → 400
 *    `{"detail": "Pagination required. You can query up to 500 items at a time (N total).
 *    Please use the `first` page link (see Link header)."}` with `Link: <…?cursor=>;
 *    rel="first"`; pages carry `Link` with `first`, `prev`, `next`.
 *  - Throttling on demand: `throttleOnce(s[, method])` makes the next authenticated request
 *    (of that method) answer 429
 *    `{"detail": "Request was throttled. Expected available in s seconds."}` + `Retry-After: s`.
 *
 * Test hooks (not part of deSEC): `seed`/`rrset`/`removeRRset` read and write the data
 * directly, `afterNextWrite` runs code after the next accepted write and before its answer
 * (to play a concurrent writer), `writes` counts accepted write requests (a bulk request
 * counts once, as in deSEC's per-domain write limit), `requests` logs every request.
 * Listens on 127.0.0.1 only, on a free port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeDomain {
  /** Domain name without the trailing dot, e.g. `example.test`. */
  name: string;
  minimum_ttl?: number;
}

export interface DesecApiFakeOptions {
  domains: FakeDomain[];
  /** The token that may do everything (default: a random one). */
  token?: string;
  /** Tokens that authenticate but may not write RRsets (403). */
  readOnlyTokens?: string[];
  /** Items per page before pagination is required (deSEC: 500). */
  pageSize?: number;
}

export interface FakeRRset {
  subname: string;
  type: string;
  ttl: number;
  records: string[];
  created: string;
  touched: string;
  seq: number;
}

export interface DesecApiFake {
  /** Base URL, e.g. `http://127.0.0.1:41234/api/v1`: the provider's `api_url`. */
  readonly url: string;
  readonly token: string;
  /** Accepted RRset write requests (a bulk request counts once). */
  readonly writes: number;
  readonly requests: { method: string; path: string; status: number }[];
  /** The next authenticated request (of this method, if given) answers 429. */
  throttleOnce(retryAfterSeconds?: number, method?: string): void;
  afterNextWrite(fn: () => void): void;
  /** Fault injection: from the n-th write request (POST, PUT, PATCH, DELETE; 1 = the next) on,
   *  every one is answered with this status and changes nothing, until the returned function
   *  is called. */
  failWritesFrom(n: number, status?: number): () => void;
  /** Put an RRset directly (canonicalised like the API does; `records: []` deletes). */
  seed(domain: string, subname: string, type: string, ttl: number, records: string[]): void;
  rrset(domain: string, subname: string, type: string): FakeRRset | undefined;
  close(): Promise<void>;
}

const MAX_TTL = 604800;
const AUTOMATIC_TYPES = new Set([
  'DNSKEY',
  'KEY',
  'NSEC',
  'NSEC3',
  'NSEC3PARAM',
  'OPT',
  'RRSIG',
  'SOA',
]);
const SUPPORTED_TYPES = new Set([
  'A',
  'AAAA',
  'AFSDB',
  'APL',
  'CAA',
  'CDNSKEY',
  'CDS',
  'CERT',
  'CNAME',
  'DHCID',
  'DNAME',
  'DS',
  'HINFO',
  'HTTPS',
  'LOC',
  'MX',
  'NAPTR',
  'NS',
  'OPENPGPKEY',
  'PTR',
  'RP',
  'SMIMEA',
  'SPF',
  'SRV',
  'SSHFP',
  'SVCB',
  'TLSA',
  'TXT',
  'URI',
]);
const SUBNAME_RE = /^([*]|(([*][.])?([a-z0-9_-]{1,63}[.])*[a-z0-9_-]{1,63}))$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

interface Domain {
  name: string;
  minimum_ttl: number;
  created: string;
  seq: number;
  rrsets: Map<string, FakeRRset>;
}

const key = (subname: string, type: string) => `${subname}|${type}`;

/** The canonical presentation of one record, as deSEC stores it; throws a message on bad input. */
function canonical(type: string, content: string): string {
  const text = content.trim();
  if (type === 'TLSA' || type === 'SMIMEA') {
    const tokens = text.split(/\s+/).filter(Boolean);
    const fields = tokens.slice(0, 3);
    if (fields.length < 3)
      throw new Error(`Record content for type ${type} malformed: unexpected end of input`);
    const nums = fields.map((t) => {
      if (!/^\d+$/.test(t))
        throw new Error(`Record content for type ${type} malformed: expecting an integer`);
      const v = Number(t);
      if (v > 255)
        throw new Error(
          `Record content for type ${type} malformed: ${v} is not an unsigned 8-bit integer`,
        );
      return v;
    });
    const hex = tokens.slice(3).join('');
    if (!hex || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex))
      throw new Error('Cannot parse hexadecimal or base64 record contents');
    return `${nums.join(' ')} ${hex.toLowerCase()}`;
  }
  if (type === 'CNAME' || type === 'NS' || type === 'PTR' || type === 'DNAME') {
    if (!/^([a-z0-9_*-]+\.)+$/i.test(text))
      throw new Error('Hostname must be fully qualified (i.e., end in a dot: "example.com.")');
    return text.toLowerCase();
  }
  if (type === 'A') {
    const parts = text.split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255))
      throw new Error(`Record content for type A malformed: Text input is malformed.`);
    return parts.map(Number).join('.');
  }
  if (type === 'TXT' || type === 'SPF') return canonicalTxt(type, text);
  return text.replace(/\s+/g, ' ');
}

/** TXT as desec-stack canonicalises it (dnspython, every token quoted, long strings allowed):
 *  each string unescaped (\X, \DDD decimal), then written back quoted with `"` and `\`
 *  escaped and bytes outside printable ASCII as \DDD, strings joined by one space. */
function canonicalTxt(type: string, text: string): string {
  const strings: number[][] = [];
  let i = 0;
  while (i < text.length) {
    if (/\s/.test(text[i]!)) {
      i++;
      continue;
    }
    if (text[i] !== '"')
      throw new Error(`Data for ${type} records must be given using quotation marks.`);
    const bytes: number[] = [];
    for (i++; ; ) {
      if (i >= text.length)
        throw new Error(`Record content for type ${type} malformed: unbalanced quotes`);
      const c = text[i]!;
      if (c === '"') {
        i++;
        break;
      }
      if (c === '\\') {
        const d = /^\d{3}/.exec(text.slice(i + 1));
        if (d && Number(d[0]) < 256) {
          bytes.push(Number(d[0]));
          i += 4;
          continue;
        }
        if (d || i + 1 >= text.length)
          throw new Error(`Record content for type ${type} malformed: bad escape`);
        bytes.push(...Buffer.from(text[i + 1]!, 'utf8'));
        i += 2;
        continue;
      }
      bytes.push(...Buffer.from(c, 'utf8'));
      i++;
    }
    strings.push(bytes);
  }
  if (!strings.length)
    throw new Error(`Data for ${type} records must be given using quotation marks.`);
  const escaped = (b: number) =>
    b === 0x22 || b === 0x5c
      ? `\\${String.fromCharCode(b)}`
      : b >= 0x20 && b < 0x7f
        ? String.fromCharCode(b)
        : `\\${String(b).padStart(3, '0')}`;
  return strings.map((bytes) => `"${bytes.map(escaped).join('')}"`).join(' ');
}

export async function startDesecApiFake(opts: DesecApiFakeOptions): Promise<DesecApiFake> {
  const token =
    opts.token ??
    `fake${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`.slice(0, 28);
  const readOnly = new Set(opts.readOnlyTokens ?? []);
  const pageSize = opts.pageSize ?? 500;
  let seq = 0;
  const now = () => new Date().toISOString();
  const domains = new Map<string, Domain>();
  for (const d of opts.domains) {
    const name = d.name.replace(/\.$/, '').toLowerCase();
    domains.set(name, {
      name,
      minimum_ttl: d.minimum_ttl ?? 3600,
      created: now(),
      seq: ++seq,
      rrsets: new Map(),
    });
  }
  let throttle: { seconds: number; method?: string } | undefined;
  let afterWrite: (() => void) | undefined;
  let writeFault: { from: number; seen: number; status: number } | undefined;
  let writes = 0;
  const requests: DesecApiFake['requests'] = [];
  let origin = '';

  const domainJson = (d: Domain, withKeys: boolean) => ({
    created: d.created,
    ...(withKeys
      ? {
          keys: [
            {
              dnskey: '257 3 13 ZmFrZQ==',
              ds: ['1 13 2 00', '1 13 4 00'],
              flags: 257,
              keytype: 'csk',
              managed: true,
            },
          ],
        }
      : {}),
    minimum_ttl: d.minimum_ttl,
    name: d.name,
    published: d.created,
    touched: d.created,
  });
  const rrsetJson = (d: Domain, r: FakeRRset) => ({
    created: r.created,
    domain: d.name,
    subname: r.subname,
    name: `${r.subname ? `${r.subname}.` : ''}${d.name}.`,
    records: [...r.records].sort(),
    ttl: r.ttl,
    type: r.type,
    touched: r.touched,
  });

  function getDomain(name: string): Domain {
    const d = domains.get(name.toLowerCase());
    if (!d) throw new HttpError(404, { detail: 'Not found.' });
    return d;
  }

  /** Cursor pagination with Link headers, as desecapi.pagination.LinkHeaderCursorPagination. */
  function paginate(
    url: URL,
    items: unknown[],
  ): { body: unknown; headers: Record<string, string>; status: number } {
    if (items.length <= pageSize && !url.searchParams.has('cursor'))
      return { body: items, headers: {}, status: 200 };
    const link = (offset: number | '') => {
      const u = new URL(url.toString(), origin);
      u.searchParams.set(
        'cursor',
        offset === '' ? '' : Buffer.from(`o=${offset}`).toString('base64url'),
      );
      return `${origin}${u.pathname}${u.search}`;
    };
    if (!url.searchParams.has('cursor')) {
      return {
        status: 400,
        body: {
          detail: `Pagination required. You can query up to ${pageSize} items at a time (${items.length} total). Please use the \`first\` page link (see Link header).`,
        },
        headers: { Link: `<${link('')}>; rel="first"` },
      };
    }
    const cursor = url.searchParams.get('cursor') ?? '';
    let offset = 0;
    if (cursor) {
      const m = /^o=(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
      if (!m) throw new HttpError(404, { detail: 'Invalid cursor' });
      offset = Number(m[1]);
    }
    const page = items.slice(offset, offset + pageSize);
    const links = [`<${link('')}>; rel="first"`];
    if (offset > 0) links.push(`<${link(Math.max(0, offset - pageSize))}>; rel="prev"`);
    if (offset + pageSize < items.length) links.push(`<${link(offset + pageSize)}>; rel="next"`);
    return { body: page, headers: { Link: links.join(', ') }, status: 200 };
  }

  interface Item {
    subname?: unknown;
    type?: unknown;
    ttl?: unknown;
    records?: unknown;
  }
  interface Valid {
    subname: string;
    type: string;
    ttl?: number;
    records?: string[];
  }

  /** Validate one RRset item; returns the errors object (empty when fine). */
  function validate(
    d: Domain,
    item: Item,
    mode: 'POST' | 'PUT' | 'PATCH',
    known: boolean,
  ): { errors: Record<string, string[]>; valid?: Valid } {
    const errors: Record<string, string[]> = {};
    const add = (field: string, msg: string) => {
      (errors[field] ??= []).push(msg);
    };
    const subname = item.subname ?? '';
    if (typeof subname !== 'string')
      add('subname', `Expected a string, but got ${typeof subname}.`);
    else if (subname !== '' && !SUBNAME_RE.test(subname))
      add(
        'subname',
        "Subname can only use (lowercase) a-z, 0-9, ., -, and _, may start with a '*.', or just be '*'. Components may not exceed 63 characters.",
      );
    const type = item.type;
    if (typeof type !== 'string' || !type) add('type', 'This field is required.');
    else if (!/^[A-Z][A-Z0-9]*$/.test(type))
      add('type', 'Type must be uppercase alphanumeric and start with a letter.');
    else if (AUTOMATIC_TYPES.has(type))
      add('type', `You cannot tinker with the ${type} RR set. It is managed automatically.`);
    else if (!SUPPORTED_TYPES.has(type))
      add('type', `The ${type} RR set type is currently unsupported.`);
    const deleting = Array.isArray(item.records) && item.records.length === 0;
    const ttlRequired = mode !== 'PATCH' ? !deleting || mode === 'POST' : !known && !deleting;
    if (item.ttl === undefined) {
      if (ttlRequired) add('ttl', 'This field is required.');
    } else if (typeof item.ttl !== 'number' || !Number.isInteger(item.ttl))
      add('ttl', 'A valid integer is required.');
    else if (item.ttl < d.minimum_ttl)
      add('ttl', `Ensure this value is greater than or equal to ${d.minimum_ttl}.`);
    else if (item.ttl > MAX_TTL)
      add('ttl', `Ensure this value is less than or equal to ${MAX_TTL}.`);
    let records: string[] | undefined;
    if (item.records === undefined) {
      if (mode !== 'PATCH' || !known) add('records', 'This field is required.');
    } else if (!Array.isArray(item.records))
      add('records', `Expected a list of items but got type "${typeof item.records}".`);
    else if (mode === 'POST' && item.records.length === 0)
      add('records', 'This field must not be empty when using POST.');
    else if (item.records.some((r) => typeof r !== 'string')) add('records', 'Must be a string.');
    else if (typeof type === 'string' && !errors.type) {
      const out: string[] = [];
      const name = `${subname ? `${String(subname)}.` : ''}${d.name}.`;
      for (const r of item.records as string[]) {
        let c: string;
        try {
          c = canonical(type, r);
        } catch (e) {
          add('non_field_errors', (e as Error).message);
          continue;
        }
        if (out.includes(c))
          add(
            'records',
            `Record content of ${type} ${name} invalid: '${r}': Duplicate record content: this is identical to '${c}'`,
          );
        else out.push(c);
      }
      if (type === 'CNAME' && out.length > 1)
        add('records', 'CNAME RRset cannot have multiple records.');
      records = out;
    }
    if (Object.keys(errors).length) return { errors };
    return {
      errors,
      valid: {
        subname: subname as string,
        type: type as string,
        ...(typeof item.ttl === 'number' ? { ttl: item.ttl } : {}),
        ...(records ? { records } : {}),
      },
    };
  }

  /** Apply a validated list of items atomically (validation of every item first). */
  function writeRRsets(
    d: Domain,
    items: Item[],
    mode: 'POST' | 'PUT' | 'PATCH',
    bulk: boolean,
  ): { status: number; body: unknown } {
    const results = items.map((it) => {
      const s = typeof it.subname === 'string' ? it.subname : '';
      const known = typeof it.type === 'string' && d.rrsets.has(key(s, it.type));
      return validate(d, it, mode, known);
    });
    // Stage 1 (structure) must pass before stage 2 (uniqueness, CNAME exclusivity).
    if (results.every((r) => r.valid)) {
      const valid = results.map((r) => r.valid!);
      valid.forEach((v, i) => {
        const dup = valid.findIndex(
          (w, j) => j !== i && w.subname === v.subname && w.type === v.type,
        );
        if (dup >= 0)
          (results[i]!.errors.non_field_errors ??= []).push(
            `Same subname and type as in position(s) ${dup}, but must be unique.`,
          );
        if (mode === 'POST' && d.rrsets.has(key(v.subname, v.type)))
          (results[i]!.errors.non_field_errors ??= []).push(
            'Another RRset with the same subdomain and type exists for this domain. (Try modifying it.)',
          );
      });
      valid.forEach((v, i) => {
        if (v.records && v.records.length === 0) return;
        // The types at this subname after the request: the database's, minus what the request deletes.
        const deleted = new Set(
          valid
            .filter((w) => w.subname === v.subname && w.records?.length === 0)
            .map((w) => w.type),
        );
        const conflicts: string[] = [];
        const dbTypes = [...d.rrsets.values()]
          .filter((r) => r.subname === v.subname && !deleted.has(r.type))
          .map((r) => r.type);
        const dbConflicts = dbTypes.filter((t) => (t === 'CNAME') !== (v.type === 'CNAME'));
        valid.forEach((w, j) => {
          if (
            j !== i &&
            w.subname === v.subname &&
            w.records?.length !== 0 &&
            (w.type === 'CNAME') !== (v.type === 'CNAME')
          )
            conflicts.push(`${j} (${w.type})`);
        });
        if (dbConflicts.length) conflicts.push(`database (${dbConflicts.sort().join(', ')})`);
        if (conflicts.length)
          (results[i]!.errors.non_field_errors ??= []).push(
            `RRset with conflicting type present: ${conflicts.join(', ')}. (No other RRsets are allowed alongside CNAME.)`,
          );
      });
    }
    if (results.some((r) => Object.keys(r.errors).length)) {
      throw new HttpError(400, bulk ? results.map((r) => r.errors) : results[0]!.errors);
    }
    const out: unknown[] = [];
    const stamp = now();
    for (const v of results.map((r) => r.valid!)) {
      const k = key(v.subname, v.type);
      const existing = d.rrsets.get(k);
      if (v.records && v.records.length === 0) {
        d.rrsets.delete(k);
        continue;
      }
      const next: FakeRRset = existing
        ? {
            ...existing,
            ttl: v.ttl ?? existing.ttl,
            records: v.records ?? existing.records,
            touched: stamp,
          }
        : {
            subname: v.subname,
            type: v.type,
            ttl: v.ttl!,
            records: v.records!,
            created: stamp,
            touched: stamp,
            seq: ++seq,
          };
      d.rrsets.set(k, next);
      out.push(rrsetJson(d, next));
    }
    writes++;
    const hook = afterWrite;
    afterWrite = undefined;
    hook?.();
    if (bulk) return { status: mode === 'POST' ? 201 : 200, body: out };
    if (out.length === 0) return { status: 204, body: undefined };
    return { status: mode === 'POST' ? 201 : 200, body: out[0] };
  }

  function handle(
    method: string,
    url: URL,
    auth: string | undefined,
    body: unknown,
  ): { status: number; body: unknown; headers?: Record<string, string> } {
    const m = /^\/api\/v1\/(.*)$/.exec(url.pathname);
    if (!m) throw new HttpError(404, { detail: 'Not found.' });
    const parts = m[1]!.split('/');
    if (parts.at(-1) !== '') throw new HttpError(404, { detail: 'Not found.' });
    parts.pop();

    if (!auth)
      throw new HttpError(
        401,
        { detail: 'Authentication credentials were not provided.' },
        { 'WWW-Authenticate': 'Token' },
      );
    const am = /^Token\s+(\S+)$/.exec(auth);
    if (!am || (am[1] !== token && !readOnly.has(am[1]!)))
      throw new HttpError(401, { detail: 'Invalid token.' }, { 'WWW-Authenticate': 'Token' });
    if (throttle !== undefined && (throttle.method === undefined || throttle.method === method)) {
      const s = throttle.seconds;
      throttle = undefined;
      throw new HttpError(
        429,
        {
          detail: `Request was throttled. Expected available in ${s} second${s === 1 ? '' : 's'}.`,
        },
        { 'Retry-After': String(s) },
      );
    }
    if (writeFault && method !== 'GET' && ++writeFault.seen >= writeFault.from) {
      throw new HttpError(writeFault.status, {
        detail: 'Injected failure: the write was not accepted.',
      });
    }
    const mayWrite = am[1] === token;
    const denied = () =>
      new HttpError(403, { detail: 'You do not have permission to perform this action.' });
    const notAllowed = () => new HttpError(405, { detail: `Method "${method}" not allowed.` });

    if (parts[0] !== 'domains') throw new HttpError(404, { detail: 'Not found.' });
    if (parts.length === 1) {
      if (method !== 'GET') throw notAllowed();
      let list = [...domains.values()].sort((a, b) => b.seq - a.seq);
      const q = url.searchParams.get('owns_qname');
      if (q !== null) {
        const qn = q.replace(/\.$/, '').toLowerCase();
        const owner = list
          .filter((d) => qn === d.name || qn.endsWith(`.${d.name}`))
          .sort((a, b) => b.name.length - a.name.length)[0];
        list = owner ? [owner] : [];
      }
      return paginate(
        url,
        list.map((d) => domainJson(d, false)),
      );
    }
    const d = getDomain(decodeURIComponent(parts[1]!));
    if (parts.length === 2) {
      if (method !== 'GET') throw notAllowed();
      return { status: 200, body: domainJson(d, true) };
    }
    if (parts[2] !== 'rrsets') throw new HttpError(404, { detail: 'Not found.' });
    if (parts.length === 3) {
      if (method === 'GET') {
        const sub = url.searchParams.get('subname');
        const type = url.searchParams.get('type');
        const list = [...d.rrsets.values()]
          .filter((r) => (sub === null || r.subname === sub) && (type === null || r.type === type))
          .sort((a, b) => b.seq - a.seq)
          .map((r) => rrsetJson(d, r));
        return paginate(url, list);
      }
      if (method !== 'POST' && method !== 'PUT' && method !== 'PATCH') throw notAllowed();
      if (!mayWrite) throw denied();
      if (Array.isArray(body)) return writeRRsets(d, body as Item[], method, true);
      if (body && typeof body === 'object') return writeRRsets(d, [body as Item], method, false);
      throw new HttpError(400, {
        non_field_errors: ['Invalid data. Expected a dictionary, but got str.'],
      });
    }
    if (parts.length === 5) {
      let sub = decodeURIComponent(parts[3]!);
      if (sub === '@') sub = '';
      else if (sub.endsWith('...')) sub = sub.slice(0, -3);
      const type = decodeURIComponent(parts[4]!);
      const existing = d.rrsets.get(key(sub, type));
      if (method === 'GET') {
        if (!existing) throw new HttpError(404, { detail: 'Not found.' });
        return { status: 200, body: rrsetJson(d, existing) };
      }
      if (method !== 'PUT' && method !== 'PATCH' && method !== 'DELETE') throw notAllowed();
      if (!mayWrite) throw denied();
      if (method === 'DELETE') {
        if (existing) writeRRsets(d, [{ subname: sub, type, records: [] }], 'PATCH', false);
        return { status: 204, body: undefined };
      }
      if (!existing) throw new HttpError(404, { detail: 'Not found.' });
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new HttpError(400, {
          non_field_errors: ['Invalid data. Expected a dictionary, but got list.'],
        });
      const item = body as Item;
      if (item.subname !== undefined && item.subname !== sub)
        throw new HttpError(400, { subname: ['Can only be written on create.'] });
      if (item.type !== undefined && item.type !== type)
        throw new HttpError(400, { type: ['Can only be written on create.'] });
      return writeRRsets(d, [{ ...item, subname: sub, type }], method, false);
    }
    throw new HttpError(404, { detail: 'Not found.' });
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const method = (req.method ?? 'GET').toUpperCase();
      const url = new URL(req.url ?? '/', origin);
      let status: number;
      let body: unknown;
      let headers: Record<string, string> = {};
      try {
        let parsed: unknown;
        const raw = Buffer.concat(chunks).toString('utf8');
        if (raw) {
          try {
            parsed = JSON.parse(raw);
          } catch (e) {
            throw new HttpError(400, { detail: `JSON parse error - ${(e as Error).message}` });
          }
        }
        ({ status, body, headers = {} } = handle(method, url, req.headers.authorization, parsed));
      } catch (e) {
        if (!(e instanceof HttpError)) {
          status = 500;
          body = { detail: `fake: ${(e as Error).message}` };
        } else {
          status = e.status;
          body = e.body;
          headers = e.headers;
        }
      }
      requests.push({ method, path: `${url.pathname}${url.search}`, status });
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        ...(text ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;

  return {
    url: `${origin}/api/v1`,
    token,
    get writes() {
      return writes;
    },
    requests,
    throttleOnce(retryAfterSeconds = 1, method?: string) {
      throttle = {
        seconds: retryAfterSeconds,
        ...(method ? { method: method.toUpperCase() } : {}),
      };
    },
    afterNextWrite(fn) {
      afterWrite = fn;
    },
    failWritesFrom(n, status = 400) {
      const fault = { from: n, seen: 0, status };
      writeFault = fault;
      return () => {
        if (writeFault === fault) writeFault = undefined;
      };
    },
    seed(domain, subname, type, ttl, records) {
      const d = getDomain(domain.replace(/\.$/, ''));
      const k = key(subname, type);
      if (records.length === 0) {
        d.rrsets.delete(k);
        return;
      }
      const stamp = now();
      const prior = d.rrsets.get(k);
      d.rrsets.set(k, {
        subname,
        type,
        ttl,
        records: records.map((r) => canonical(type, r)),
        created: prior?.created ?? stamp,
        touched: stamp,
        seq: prior?.seq ?? ++seq,
      });
    },
    rrset(domain, subname, type) {
      const r = domains
        .get(domain.replace(/\.$/, '').toLowerCase())
        ?.rrsets.get(key(subname, type));
      return r ? { ...r, records: [...r.records] } : undefined;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
