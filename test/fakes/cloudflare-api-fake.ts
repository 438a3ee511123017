/**
 * cloudflare-api-fake: an HTTP fake that follows the published API contract; not the service.
 *
 * It speaks enough of the Cloudflare v4 API (JSON, `Authorization: Bearer TOKEN`) on 127.0.0.1
 * for the `cloudflare` provider and the provider contract; the real SDK is pointed at it with
 * `baseURL` = `${fake.url}/client/v4`:
 *
 *   GET    /zones?name=&status=&page=&per_page=                 list zones (Zone:Read)
 *   GET    /zones/{zone}/dns_records?type=&name=|name.exact=&content=|content.exact=&page=&per_page=
 *   POST   /zones/{zone}/dns_records                            create (DNS:Edit)
 *   DELETE /zones/{zone}/dns_records/{id}                       delete (DNS:Edit)
 *   POST   /zones/{zone}/dns_records/batch {deletes, patches, puts, posts}
 *
 * What it follows from the contract: the envelope `{success, errors: [{code, message}],
 * messages, result, result_info: {page, per_page, count, total_count, total_pages}}`; page-based
 * lists where a page past the end is empty (the SDK's paginator stops only on an empty page;
 * `maxPerPage` makes pages small so tests exercise paging); TLSA records with
 * `data: {usage, selector, matching_type, certificate}` and `content` "u s m hex"; `comment`;
 * TTL 1 (automatic) or 60..86400 (9021); the error codes users quote from the service: 81058
 * "An identical record already exists.", 81053 (CNAME where other records are), 81054 "A CNAME
 * record with that host already exists.", 81044 "Record does not exist." (404), 7003/7000 for
 * an unknown zone identifier, 9109 "Invalid access token" (401), 10000 "Authentication error"
 * (403) for a token without the permission, 6003/6111 for a malformed Authorization header;
 * TXT `content` as quoted character-strings (RFC 1035; bare content gets its quotes, a string
 * over 255 bytes is split, an unbalanced quote is refused), identical TXT text compared
 * case-sensitively;
 * 429 with `retry-after` (seconds); the batch runs deletes → patches → puts → posts in one
 * transaction (all or nothing), at most 200 operations (the Free plan's limit).
 *
 * Not modelled: proxying, tags, settings, the rate limiter itself, zone plans, DNSSEC.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CfRecord {
  id: string;
  zone_id: string;
  zone_name: string;
  /** Lower case, no trailing dot (as the API returns it). */
  name: string;
  type: string;
  content: string;
  data?: { usage: number; selector: number; matching_type: number; certificate: string };
  ttl: number;
  proxiable: boolean;
  proxied: boolean;
  comment: string | null;
  tags: string[];
  settings: Record<string, unknown>;
  meta: Record<string, unknown>;
  created_on: string;
  modified_on: string;
}

export interface CfZone {
  id: string;
  name: string;
  status: 'active' | 'pending' | 'moved';
  records: CfRecord[];
}

export interface CfTokenGrant {
  /** Zone ids the token covers; absent: all zones. */
  zones?: string[];
  /** Zone → DNS → Edit (else read only). */
  dnsEdit?: boolean;
  /** Zone → Zone → Read (needed to look zones up by name). */
  zoneRead?: boolean;
}

export interface CfLoggedRequest {
  method: string;
  /** Path below /client/v4. */
  path: string;
  query: Record<string, string>;
  status: number;
  /** Error codes of a failed answer. */
  codes?: number[];
  /** For writes: what was asked ("POST name 3 1 1 …", "DELETE id", "BATCH d=1 p=2"). */
  detail?: string;
}

export interface CloudflareFakeOptions {
  /** The token with full access (default: a random one). */
  token?: string;
  /** Largest page the fake returns, whatever per_page asks (the service: 5,000,000 for DNS). */
  maxPerPage?: number;
}

const PREFIX = '/client/v4';

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errors: Array<{
      code: number;
      message: string;
      error_chain?: Array<{ code: number; message: string }>;
    }>,
    readonly headers: Record<string, string> = {},
  ) {
    super(errors.map((e) => `${e.code} ${e.message}`).join('; '));
  }
}
const fail = (status: number, code: number, message: string) =>
  new ApiError(status, [{ code, message }]);

export class CloudflareApiFake {
  readonly token: string;
  maxPerPage: number;
  url = '';
  /** The baseURL to give the SDK. */
  baseUrl = '';
  readonly requests: CfLoggedRequest[] = [];

  private server: Server | undefined;
  private readonly zones = new Map<string, CfZone>();
  private readonly tokens = new Map<string, CfTokenGrant>();
  private readonly failures: ApiError[] = [];
  private readonly beforeWrite: Array<() => void> = [];
  private writeFault: { from: number; seen: number; error: ApiError } | undefined;

  private constructor(opts: CloudflareFakeOptions) {
    this.token = opts.token ?? `cf-fake-${randomBytes(18).toString('base64url')}`;
    this.maxPerPage = opts.maxPerPage ?? 5_000_000;
    this.tokens.set(this.token, { dnsEdit: true, zoneRead: true });
  }

  static async start(opts: CloudflareFakeOptions = {}): Promise<CloudflareApiFake> {
    const fake = new CloudflareApiFake(opts);
    const server = createServer((req, res) => {
      void fake.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    fake.server = server;
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    fake.baseUrl = `${fake.url}${PREFIX}`;
    return fake;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  // ------------------------------------------------------------------------------------------
  // Direct access for tests (not through the API)

  addZone(name: string, opts: { id?: string; status?: CfZone['status'] } = {}): string {
    const id = opts.id ?? randomBytes(16).toString('hex');
    this.zones.set(id, { id, name: bare(name), status: opts.status ?? 'active', records: [] });
    return id;
  }

  addToken(token: string, grant: CfTokenGrant): void {
    this.tokens.set(token, grant);
  }

  /** Store a record directly, as another writer (the dashboard, another tool) would. No checks. */
  addRecord(
    name: string,
    type: string,
    fields: { content?: string; data?: CfRecord['data']; ttl?: number; comment?: string },
  ): CfRecord {
    const zone = this.zoneOf(name);
    const r = makeRecord(
      zone,
      bare(name),
      type.toUpperCase(),
      fields.content ?? contentOf(fields.data),
      fields.data,
      fields.ttl ?? 300,
      fields.comment ?? null,
    );
    zone.records.push(r);
    return { ...r };
  }

  /** Delete a record directly, as another writer would. */
  removeRecord(id: string): boolean {
    for (const z of this.zones.values()) {
      const idx = z.records.findIndex((r) => r.id === id);
      if (idx >= 0) {
        z.records.splice(idx, 1);
        return true;
      }
    }
    return false;
  }

  /** Records at `name` (of `type` if given), as stored. */
  records(name: string, type?: string): CfRecord[] {
    const n = bare(name);
    return [...this.zones.values()].flatMap((z) =>
      z.records
        .filter((r) => r.name === n && (!type || r.type === type.toUpperCase()))
        .map((r) => ({ ...r })),
    );
  }

  /** The next request fails once with 429 and `retry-after` (seconds). */
  throttleOnce(retryAfterS = 1): void {
    this.failures.push(
      new ApiError(
        429,
        [{ code: 971, message: 'Please wait and consider throttling your request speed' }],
        { 'retry-after': String(retryAfterS) },
      ),
    );
  }

  /** The next request fails once with a server error. */
  failOnce(status = 500): void {
    this.failures.push(fail(status, 1000, 'Internal server error'));
  }

  /** Fault injection: from the n-th write (POST, DELETE, batch; 1 = the next) on, every write
   *  fails with this error, changing nothing, until the returned function is called. The
   *  default is what a zone over its record quota answers. */
  failWritesFrom(
    n: number,
    status = 400,
    code = 81045,
    message = 'Record quota exceeded.',
  ): () => void {
    const fault = { from: n, seen: 0, error: fail(status, code, message) };
    this.writeFault = fault;
    return () => {
      if (this.writeFault === fault) this.writeFault = undefined;
    };
  }

  /** Run `fn` once, right before the next write (POST, DELETE, batch) is processed. */
  onceBeforeWrite(fn: () => void): void {
    this.beforeWrite.push(fn);
  }

  clearLog(): void {
    this.requests.length = 0;
  }

  // ------------------------------------------------------------------------------------------

  private zoneOf(name: string): CfZone {
    const n = bare(name);
    let best: CfZone | undefined;
    for (const z of this.zones.values()) {
      if ((n === z.name || n.endsWith(`.${z.name}`)) && (!best || z.name.length > best.name.length))
        best = z;
    }
    if (!best) throw new Error(`cloudflare-api-fake: no zone contains ${name}`);
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const path = url.pathname.startsWith(PREFIX)
      ? url.pathname.slice(PREFIX.length) || '/'
      : url.pathname;
    const entry: CfLoggedRequest = {
      method,
      path,
      query: Object.fromEntries(url.searchParams),
      status: 200,
    };
    this.requests.push(entry);
    try {
      if (!url.pathname.startsWith(PREFIX))
        throw new ApiError(400, [
          {
            code: 7003,
            message: `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`,
          },
          { code: 7000, message: 'No route for that URI' },
        ]);
      const grant = this.authenticate(req);
      const failure = this.failures.shift();
      if (failure) throw failure;
      const fault = this.writeFault;
      if (fault && method !== 'GET' && ++fault.seen >= fault.from) throw fault.error;
      let body: unknown;
      if (chunks.length) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          throw fail(400, 6007, 'Malformed JSON in request body');
        }
      }
      const out = this.dispatch(entry, grant, method, path, url.searchParams, body);
      json(res, 200, { success: true, errors: [], messages: [], ...out });
    } catch (e) {
      const err = e instanceof ApiError ? e : fail(500, 1000, (e as Error).message);
      entry.status = err.status;
      entry.codes = err.errors.map((x) => x.code);
      json(
        res,
        err.status,
        { success: false, errors: err.errors, messages: [], result: null },
        err.headers,
      );
    }
  }

  private authenticate(req: IncomingMessage): CfTokenGrant {
    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(auth) : null;
    if (!m)
      throw new ApiError(400, [
        {
          code: 6003,
          message: 'Invalid request headers',
          error_chain: [{ code: 6111, message: 'Invalid format for Authorization header' }],
        },
      ]);
    const grant = this.tokens.get(m[1]!);
    if (!grant) throw fail(401, 9109, 'Invalid access token');
    return grant;
  }

  private zoneFor(id: string, path: string, grant: CfTokenGrant, write: boolean): CfZone {
    const zone = this.zones.get(id);
    if (!zone)
      throw new ApiError(400, [
        {
          code: 7003,
          message: `Could not route to ${PREFIX}${path}, perhaps your object identifier is invalid?`,
        },
        { code: 7000, message: 'No route for that URI' },
      ]);
    if ((grant.zones && !grant.zones.includes(id)) || (write && !grant.dnsEdit))
      throw fail(403, 10000, 'Authentication error');
    return zone;
  }

  private dispatch(
    entry: CfLoggedRequest,
    grant: CfTokenGrant,
    method: string,
    path: string,
    q: URLSearchParams,
    body: unknown,
  ): Record<string, unknown> {
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/zones') {
      if (!grant.zoneRead) return page([], q, this.maxPerPage);
      const name = q.get('name');
      const status = q.get('status');
      const zones = [...this.zones.values()]
        .filter(
          (z) =>
            (!grant.zones || grant.zones.includes(z.id)) &&
            (!name || z.name === bare(name)) &&
            (!status || z.status === status),
        )
        .map((z) => ({
          id: z.id,
          name: z.name,
          status: z.status,
          paused: false,
          type: 'full',
          name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'],
        }));
      return page(zones, q, this.maxPerPage);
    }
    if ((m = /^\/zones\/([^/]+)\/dns_records$/.exec(path))) {
      const write = method === 'POST';
      const zone = this.zoneFor(m[1]!, path, grant, write);
      if (method === 'GET')
        return page(
          filterRecords(zone.records, q).map((r) => ({ ...r })),
          q,
          this.maxPerPage,
        );
      if (method === 'POST') {
        for (const fn of this.beforeWrite.splice(0)) fn();
        const p = body as Record<string, unknown>;
        entry.detail = `POST ${String(p?.type)} ${String(p?.name)} ${JSON.stringify(p?.data ?? p?.content)}`;
        const work = [...zone.records];
        const r = createRecord(zone, work, p);
        zone.records = work;
        return { result: { ...r } };
      }
    }
    if ((m = /^\/zones\/([^/]+)\/dns_records\/batch$/.exec(path)) && method === 'POST') {
      const zone = this.zoneFor(m[1]!, path, grant, true);
      for (const fn of this.beforeWrite.splice(0)) fn();
      return { result: batch(entry, zone, body as Record<string, unknown>) };
    }
    if ((m = /^\/zones\/([^/]+)\/dns_records\/([^/]+)$/.exec(path))) {
      const zone = this.zoneFor(m[1]!, path, grant, method !== 'GET');
      const id = m[2]!;
      if (method === 'DELETE') {
        for (const fn of this.beforeWrite.splice(0)) fn();
        entry.detail = `DELETE ${id}`;
        const idx = zone.records.findIndex((r) => r.id === id);
        if (idx < 0) throw fail(404, 81044, 'Record does not exist.');
        zone.records.splice(idx, 1);
        return { result: { id } };
      }
      if (method === 'GET') {
        const r = zone.records.find((x) => x.id === id);
        if (!r) throw fail(404, 81044, 'Record does not exist.');
        return { result: { ...r } };
      }
    }
    throw new ApiError(405, [
      { code: 10405, message: `Method ${method} not available for that URI.` },
    ]);
  }
}

function batch(
  entry: CfLoggedRequest,
  zone: CfZone,
  body: Record<string, unknown>,
): Record<string, CfRecord[]> {
  const list = (k: string) =>
    Array.isArray(body?.[k]) ? (body[k] as Array<Record<string, unknown>>) : [];
  const deletes = list('deletes');
  const patches = list('patches');
  const puts = list('puts');
  const posts = list('posts');
  entry.detail = `BATCH deletes=${deletes.length} patches=${patches.length} puts=${puts.length} posts=${posts.length}`;
  if (deletes.length + patches.length + puts.length + posts.length > 200)
    throw fail(
      400,
      81070,
      'Batch size limit exceeded: at most 200 records per batch on this plan.',
    );
  const work = [...zone.records];
  const out: Record<string, CfRecord[]> = { deletes: [], patches: [], puts: [], posts: [] };
  for (const d of deletes) {
    const idx = work.findIndex((r) => r.id === d.id);
    if (idx < 0) throw fail(404, 81044, 'Record does not exist.');
    out.deletes!.push({ ...work.splice(idx, 1)[0]! });
  }
  for (const [kind, ops] of [
    ['patches', patches],
    ['puts', puts],
  ] as const) {
    for (const p of ops) {
      const idx = work.findIndex((r) => r.id === p.id);
      if (idx < 0) throw fail(404, 81044, 'Record does not exist.');
      const old = work.splice(idx, 1)[0]!;
      const merged =
        kind === 'patches'
          ? {
              type: old.type,
              name: old.name,
              ttl: old.ttl,
              content: old.content,
              data: old.data,
              comment: old.comment,
              ...p,
            }
          : p;
      const r = createRecord(zone, work, merged);
      r.id = old.id;
      r.created_on = old.created_on;
      out[kind]!.push({ ...r });
    }
  }
  for (const p of posts) out.posts!.push({ ...createRecord(zone, work, p) });
  zone.records = work;
  return out;
}

/** Validate and add a record to `work` (the zone's records or a batch's working copy); returns
 *  the stored object (callers copy it before handing it out). */
function createRecord(zone: CfZone, work: CfRecord[], p: Record<string, unknown>): CfRecord {
  const type = typeof p?.type === 'string' ? (p.type as string).toUpperCase() : '';
  const rawName = typeof p?.name === 'string' ? bare(p.name as string) : '';
  if (!type)
    throw new ApiError(400, [
      {
        code: 1004,
        message: 'DNS Validation Error',
        error_chain: [{ code: 9000, message: 'DNS record type is invalid.' }],
      },
    ]);
  if (!rawName)
    throw new ApiError(400, [
      {
        code: 1004,
        message: 'DNS Validation Error',
        error_chain: [{ code: 9007, message: 'DNS record name is required.' }],
      },
    ]);
  const name =
    rawName === '@'
      ? zone.name
      : rawName === zone.name || rawName.endsWith(`.${zone.name}`)
        ? rawName
        : `${rawName}.${zone.name}`;
  const ttl = p.ttl === undefined ? 1 : p.ttl;
  if (
    typeof ttl !== 'number' ||
    !(ttl === 1 || (Number.isInteger(ttl) && ttl >= 60 && ttl <= 86400))
  )
    throw fail(400, 9021, 'Invalid TTL. Must be between 60 and 86400 seconds, or 1 for automatic.');
  let data: CfRecord['data'];
  let content = typeof p.content === 'string' ? (p.content as string) : '';
  if (type === 'TLSA') {
    const d = p.data as Record<string, unknown> | undefined;
    const ok =
      d &&
      isInt(d.usage, 0, 3) &&
      isInt(d.selector, 0, 1) &&
      isInt(d.matching_type, 0, 2) &&
      typeof d.certificate === 'string' &&
      /^([0-9a-fA-F]{2})+$/.test(d.certificate);
    if (!ok)
      throw new ApiError(400, [
        {
          code: 1004,
          message: 'DNS Validation Error',
          error_chain: [
            {
              code: 9101,
              message:
                'TLSA record data is invalid: usage 0-3, selector 0-1, matching_type 0-2, certificate hex.',
            },
          ],
        },
      ]);
    data = {
      usage: d.usage as number,
      selector: d.selector as number,
      matching_type: d.matching_type as number,
      certificate: (d.certificate as string).toLowerCase(),
    };
    content = contentOf(data);
  } else if (!content) {
    throw new ApiError(400, [
      {
        code: 1004,
        message: 'DNS Validation Error',
        error_chain: [{ code: 9005, message: 'Content for the record is required.' }],
      },
    ]);
  } else if (type === 'TXT') {
    content = txtContent(content);
  }
  const comment = p.comment === undefined || p.comment === null ? null : String(p.comment);
  if (comment !== null && comment.length > 100)
    throw fail(400, 9100, 'DNS record comment is too long: at most 100 characters on this plan.');
  const same = work.filter((r) => r.name === name);
  if (type !== 'CNAME' && same.some((r) => r.type === 'CNAME'))
    throw fail(400, 81054, 'A CNAME record with that host already exists.');
  if (type === 'CNAME' && same.length)
    throw fail(400, 81053, 'An A, AAAA, or CNAME record with that host already exists.');
  // TXT text is case-sensitive; other contents (names, hex) are not.
  const identical = (a: string) =>
    type === 'TXT' ? a === content : a.toLowerCase() === content.toLowerCase();
  if (same.some((r) => r.type === type && identical(r.content)))
    throw fail(400, 81058, 'An identical record already exists.');
  const r = makeRecord(zone, name, type, content, data, ttl, comment);
  work.push(r);
  return r;
}

/** TXT `content` as the API takes it: quoted character-strings (RFC 1035), each string over
 *  255 bytes split into several; bare content is quoted (Cloudflare adds the quotes itself);
 *  a quote left open is refused. */
function txtContent(content: string): string {
  const text = content.trim();
  if (!text.startsWith('"')) return quoteStrings([text.replace(/["\\]/g, '\\$&')]);
  if (!/^(?:"(?:[^"\\]|\\.)*"\s*)+$/.test(text))
    throw new ApiError(400, [
      {
        code: 1004,
        message: 'DNS Validation Error',
        error_chain: [
          {
            code: 1004,
            message:
              'Content for TXT record is invalid: quoted character strings are not balanced.',
          },
        ],
      },
    ]);
  return quoteStrings([...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!));
}

/** Strings (escaped, without quotes) quoted, each over 255 bytes split. */
function quoteStrings(strings: string[]): string {
  const out: string[] = [];
  for (const s of strings) {
    // Escapes (\X, \DDD) are one byte each and never split.
    const units = s.match(/\\\d{3}|\\.|[^\\]/g) ?? [];
    let cur: string[] = [];
    let bytes = 0;
    for (const u of units) {
      const n = u.startsWith('\\') ? 1 : Buffer.byteLength(u);
      if (bytes + n > 255) {
        out.push(cur.join(''));
        cur = [];
        bytes = 0;
      }
      cur.push(u);
      bytes += n;
    }
    out.push(cur.join(''));
  }
  return out.map((s) => `"${s}"`).join(' ');
}

function makeRecord(
  zone: CfZone,
  name: string,
  type: string,
  content: string,
  data: CfRecord['data'],
  ttl: number,
  comment: string | null,
): CfRecord {
  const now = new Date().toISOString();
  return {
    id: randomBytes(16).toString('hex'),
    zone_id: zone.id,
    zone_name: zone.name,
    name,
    type,
    content,
    ...(data ? { data } : {}),
    ttl,
    proxiable: false,
    proxied: false,
    comment,
    tags: [],
    settings: {},
    meta: {},
    created_on: now,
    modified_on: now,
  };
}

function filterRecords(records: CfRecord[], q: URLSearchParams): CfRecord[] {
  const type = q.get('type')?.toUpperCase();
  const name = q.get('name.exact') ?? q.get('name');
  const content = q.get('content.exact') ?? q.get('content');
  const comment = q.get('comment.exact') ?? q.get('comment');
  return records.filter(
    (r) =>
      (!type || r.type === type) &&
      (!name || r.name === bare(name)) &&
      (!content || r.content.toLowerCase() === content.toLowerCase()) &&
      (!comment || (r.comment ?? '').toLowerCase() === comment.toLowerCase()),
  );
}

function page<T>(items: T[], q: URLSearchParams, maxPerPage: number): Record<string, unknown> {
  const pageNo = Math.max(1, Number(q.get('page') ?? 1) || 1);
  const asked = Number(q.get('per_page') ?? 100) || 100;
  const perPage = Math.max(1, Math.min(asked, maxPerPage));
  const slice = items.slice((pageNo - 1) * perPage, pageNo * perPage);
  return {
    result: slice,
    result_info: {
      page: pageNo,
      per_page: perPage,
      count: slice.length,
      total_count: items.length,
      total_pages: Math.ceil(items.length / perPage),
    },
  };
}

function contentOf(data: CfRecord['data']): string {
  return data ? `${data.usage} ${data.selector} ${data.matching_type} ${data.certificate}` : '';
}

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** Lower case, no trailing dot: how the API writes names. */
function bare(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}
