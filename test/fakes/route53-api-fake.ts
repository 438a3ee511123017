/**
 * route53-api-fake: an HTTP fake that follows the published API contract; not the service.
 *
 * It speaks the Route 53 REST/XML API (version 2013-04-01) on 127.0.0.1, enough for the
 * `route53` provider and the provider contract, so the real AWS SDK can be pointed at it with
 * its `endpoint` override:
 *
 *   GET  /2013-04-01/hostedzonesbyname?dnsname=&hostedzoneid=&maxitems=   ListHostedZonesByName
 *   GET  /2013-04-01/hostedzone/{Id}/rrset?name=&type=&identifier=&maxitems= ListResourceRecordSets
 *   POST /2013-04-01/hostedzone/{Id}/rrset                                   ChangeResourceRecordSets
 *   GET  /2013-04-01/change/{Id}                                             GetChange
 *
 * What it follows from the contract (AWS API reference and the errors users quote from the
 * service): record sets sorted by name with the labels reversed, then by type; pagination with
 * IsTruncated/NextRecordName/NextRecordType (the service returns at most 300 sets a page;
 * `maxItemsCap` makes that smaller so that tests exercise paging); a change batch is one
 * transaction, its changes checked in order against a working copy, a DELETE must carry the exact
 * TTL and values; InvalidChangeBatch messages in the service's words ("Tried to delete resource
 * record set [name='…', type='…'] but it was not found", "… but the values provided do not
 * match the current values", "Tried to create resource record set … but it already exists",
 * the CNAME conflicts); errors as `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code>
 * <Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>`; Throttling and
 * PriorRequestNotComplete (HTTP 400); changes PENDING then INSYNC; TXT values as the service
 * takes them (every string in double quotes, else "InvalidCharacterString (Value should be
 * enclosed in quotation marks)"; at most 255 characters a string, else
 * "CharacterStringTooLong (Value is too long)"), stored and listed as given; SigV4: the access key id must
 * be the fake's (InvalidClientTokenId, 403), the signature is checked against its secret
 * (SignatureDoesNotMatch, 403); an IAM deny list gives AccessDenied (403) naming the action.
 *
 * Not modelled: routing policies (SetIdentifier), alias records, health checks, private-zone
 * VPC associations, DNSSEC, quotas other than the page size.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const NS = 'https://route53.amazonaws.com/doc/2013-04-01/';

export interface FakeRRSet {
  /** Absolute, lower case, trailing dot. */
  name: string;
  type: string;
  ttl: number;
  values: string[];
}

export interface FakeZone {
  id: string;
  name: string;
  private: boolean;
  callerReference: string;
  sets: FakeRRSet[];
}

/** One request as the fake saw it, for tests that count reads and writes. */
export interface LoggedRequest {
  op: string;
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  /** Error code when the answer was an error. */
  code?: string;
  /** ChangeResourceRecordSets: the changes ("DELETE name TLSA ttl [values]"); GetChange: the status. */
  detail?: string;
}

export interface Route53FakeOptions {
  /** Credentials the fake accepts (defaults: fixed fake values). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Largest page ListResourceRecordSets returns (the service: 300). */
  maxItemsCap?: number;
  /** How long a change stays PENDING before GetChange answers INSYNC, in ms. */
  changeSyncMs?: number;
}

const IAM_ACTION: Record<string, string> = {
  ListHostedZonesByName: 'route53:ListHostedZonesByName',
  ListResourceRecordSets: 'route53:ListResourceRecordSets',
  ChangeResourceRecordSets: 'route53:ChangeResourceRecordSets',
  GetChange: 'route53:GetChange',
};

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly type: 'Sender' | 'Receiver' = 'Sender',
  ) {
    super(message);
  }
}

export class Route53ApiFake {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  maxItemsCap: number;
  changeSyncMs: number;
  /** Every request, in order. `clearLog()` between phases of a test. */
  readonly requests: LoggedRequest[] = [];
  url = '';

  private server: Server | undefined;
  private readonly zones = new Map<string, FakeZone>();
  private readonly changes = new Map<
    string,
    { submittedAt: Date; syncAt: number; comment?: string }
  >();
  private readonly failures: ApiError[] = [];
  private readonly denied = new Set<string>();
  private readonly beforeChange: Array<() => void> = [];
  private changeFault: { from: number; seen: number; error: ApiError } | undefined;

  private constructor(opts: Route53FakeOptions) {
    this.accessKeyId = opts.accessKeyId ?? 'AKIAFAKEROUTE53TEST01';
    this.secretAccessKey = opts.secretAccessKey ?? `fake-secret-${randomBytes(12).toString('hex')}`;
    this.maxItemsCap = opts.maxItemsCap ?? 300;
    this.changeSyncMs = opts.changeSyncMs ?? 0;
  }

  static async start(opts: Route53FakeOptions = {}): Promise<Route53ApiFake> {
    const fake = new Route53ApiFake(opts);
    const server = createServer((req, res) => {
      void fake.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
    });
    fake.server = server;
    fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
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

  /** Create a hosted zone with its SOA and NS record sets; returns its id (without /hostedzone/). */
  addZone(name: string, opts: { private?: boolean; id?: string } = {}): string {
    const zname = norm(name);
    const id = opts.id ?? `Z${randomBytes(10).toString('hex').toUpperCase().slice(0, 19)}`;
    this.zones.set(id, {
      id,
      name: zname,
      private: opts.private ?? false,
      callerReference: randomUUID(),
      sets: [
        {
          name: zname,
          type: 'NS',
          ttl: 172800,
          values: ['ns-1.awsdns-fake.org.', 'ns-2.awsdns-fake.net.'],
        },
        {
          name: zname,
          type: 'SOA',
          ttl: 900,
          values: ['ns-1.awsdns-fake.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400'],
        },
      ],
    });
    return id;
  }

  /** Add one value to the record set at owner/type (created with `ttl` if absent), as another
   *  writer (the console, another tool) would. */
  addRecord(owner: string, type: string, ttl: number, value: string): void {
    const zone = this.zoneOf(owner);
    const o = norm(owner);
    const t = type.toUpperCase();
    const set = zone.sets.find((s) => s.name === o && s.type === t);
    if (set) {
      if (!set.values.includes(value)) set.values.push(value);
    } else {
      zone.sets.push({ name: o, type: t, ttl, values: [value] });
    }
  }

  /** The record set at owner/type as stored, or undefined. */
  recordSet(owner: string, type: string): FakeRRSet | undefined {
    const o = norm(owner);
    for (const z of this.zones.values()) {
      const s = z.sets.find((x) => x.name === o && x.type === type.toUpperCase());
      if (s) return { ...s, values: [...s.values] };
    }
    return undefined;
  }

  /** The values at owner/type (empty when there is no such record set). */
  values(owner: string, type: string): string[] {
    return this.recordSet(owner, type)?.values ?? [];
  }

  /** The next request (of any operation) fails once with the service's throttling answer. */
  throttleOnce(code: 'Throttling' | 'PriorRequestNotComplete' = 'Throttling'): void {
    this.failures.push(
      code === 'Throttling'
        ? new ApiError(400, 'Throttling', 'Rate exceeded')
        : new ApiError(
            400,
            'PriorRequestNotComplete',
            'The request was rejected because Route 53 was still processing a prior request.',
          ),
    );
  }

  /** The next request fails once with a server error. */
  failOnce(status = 503): void {
    this.failures.push(
      status === 503
        ? new ApiError(503, 'ServiceUnavailable', 'Service is unavailable.', 'Receiver')
        : new ApiError(
            status,
            'InternalFailure',
            'The request processing has failed because of an unknown error, exception or failure.',
            'Receiver',
          ),
    );
  }

  /** Requests for this IAM action (e.g. `route53:ChangeResourceRecordSets`) get AccessDenied. */
  deny(action: string): void {
    this.denied.add(action);
  }

  allow(action: string): void {
    this.denied.delete(action);
  }

  /** Fault injection: from the n-th ChangeResourceRecordSets (1 = the next) on, every one
   *  fails with this error, changing nothing, until the returned function is called. */
  failChangesFrom(
    n: number,
    error = new ApiError(
      400,
      'InvalidInput',
      'Injected failure: the change batch was not accepted.',
    ),
  ): () => void {
    const fault = { from: n, seen: 0, error };
    this.changeFault = fault;
    return () => {
      if (this.changeFault === fault) this.changeFault = undefined;
    };
  }

  /** Run `fn` once, right before the next ChangeResourceRecordSets is processed: a racing
   *  writer between the caller's read and its write. */
  onceBeforeChange(fn: () => void): void {
    this.beforeChange.push(fn);
  }

  clearLog(): void {
    this.requests.length = 0;
  }

  // ------------------------------------------------------------------------------------------

  private zoneOf(owner: string): FakeZone {
    const o = norm(owner);
    let best: FakeZone | undefined;
    for (const z of this.zones.values()) {
      if (z.private) continue;
      if ((o === z.name || o.endsWith(`.${z.name}`)) && (!best || z.name.length > best.name.length))
        best = z;
    }
    if (!best) throw new Error(`route53-api-fake: no hosted zone contains ${owner}`);
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '');
    const entry: LoggedRequest = {
      op: operationOf(method, path),
      method,
      path,
      query,
      status: 200,
    };
    this.requests.push(entry);
    try {
      this.authenticate(req, body, url);
      const action = IAM_ACTION[entry.op];
      if (action && this.denied.has(action)) {
        throw new ApiError(
          403,
          'AccessDenied',
          `User: arn:aws:iam::123456789012:user/tlsa-test is not authorized to perform: ${action} on resource: ${resourceArn(entry.op, path)} because no identity-based policy allows the ${action} action`,
        );
      }
      const failure = this.failures.shift();
      if (failure) throw failure;
      const fault = this.changeFault;
      if (fault && entry.op === 'ChangeResourceRecordSets' && ++fault.seen >= fault.from)
        throw fault.error;
      const xml = this.dispatch(entry, method, path, url.searchParams, body.toString('utf8'));
      send(res, 200, xml);
    } catch (e) {
      const err =
        e instanceof ApiError
          ? e
          : new ApiError(500, 'InternalFailure', (e as Error).message, 'Receiver');
      entry.status = err.status;
      entry.code = err.code;
      send(
        res,
        err.status,
        `<?xml version="1.0"?>\n<ErrorResponse xmlns="${NS}"><Error><Type>${err.type}</Type><Code>${err.code}</Code><Message>${esc(err.message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
    }
  }

  /** SigV4 (AWS4-HMAC-SHA256) as the SDK signs: the key id must be ours, the signature must be
   *  the one our secret gives for the canonical request. */
  private authenticate(req: IncomingMessage, body: Buffer, url: URL): void {
    const auth = header(req, 'authorization');
    if (!auth)
      throw new ApiError(403, 'MissingAuthenticationToken', 'Missing Authentication Token');
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(
        auth,
      );
    if (!m)
      throw new ApiError(
        400,
        'IncompleteSignature',
        `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.`,
      );
    const [, keyId, date, region, service, signedHeaders, signature] = m as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (keyId !== this.accessKeyId)
      throw new ApiError(
        403,
        'InvalidClientTokenId',
        'The security token included in the request is invalid.',
      );
    const amzDate = header(req, 'x-amz-date') ?? '';
    const canonicalHeaders = signedHeaders
      .split(';')
      .map((h) => `${h}:${(header(req, h) ?? '').trim().replace(/\s+/g, ' ')}\n`)
      .join('');
    const canonicalQuery = [...url.searchParams.entries()]
      .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
      .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const payloadHash = header(req, 'x-amz-content-sha256') ?? sha256(body);
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const canonicalRequest = [
      req.method,
      rawPath,
      canonicalQuery,
      canonicalHeaders,
      signedHeaders,
      payloadHash,
    ].join('\n');
    const scope = `${date}/${region}/${service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
    const kDate = hmac(`AWS4${this.secretAccessKey}`, date);
    const kSigning = hmac(hmac(hmac(kDate, region), service), 'aws4_request');
    const expected = hmac(kSigning, stringToSign).toString('hex');
    if (expected !== signature) {
      throw new ApiError(
        403,
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      );
    }
  }

  private dispatch(
    entry: LoggedRequest,
    method: string,
    path: string,
    q: URLSearchParams,
    body: string,
  ): string {
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/2013-04-01/hostedzonesbyname')
      return this.listHostedZonesByName(q);
    if ((m = /^\/2013-04-01\/hostedzone\/([^/]+)\/rrset$/.exec(path))) {
      const zone = this.zones.get(m[1]!);
      if (!zone)
        throw new ApiError(404, 'NoSuchHostedZone', `No hosted zone found with ID: ${m[1]}`);
      if (method === 'GET') return this.listResourceRecordSets(zone, q);
      if (method === 'POST') return this.changeResourceRecordSets(entry, zone, body);
    }
    if (method === 'GET' && (m = /^\/2013-04-01\/change\/([^/]+)$/.exec(path))) {
      const change = this.changes.get(m[1]!);
      if (!change)
        throw new ApiError(404, 'NoSuchChange', `Could not find resource with ID: ${m[1]}`);
      const status = Date.now() >= change.syncAt ? 'INSYNC' : 'PENDING';
      entry.detail = status;
      return `<?xml version="1.0"?>\n<GetChangeResponse xmlns="${NS}">${changeInfo(m[1]!, status, change.submittedAt, change.comment)}</GetChangeResponse>`;
    }
    throw new ApiError(404, 'UnknownOperationException', `Unknown operation ${method} ${path}`);
  }

  private listHostedZonesByName(q: URLSearchParams): string {
    const dnsname = q.get('dnsname');
    const zoneId = q.get('hostedzoneid');
    if (zoneId && !dnsname)
      throw new ApiError(
        400,
        'InvalidInput',
        'The input is not valid: hostedzoneid requires dnsname.',
      );
    const max = clampItems(q.get('maxitems'), 100);
    const all = [...this.zones.values()].sort(
      (a, b) => cmpName(a.name, b.name) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
    let start = 0;
    if (dnsname) {
      const d = norm(dnsname);
      start = all.findIndex(
        (z) => cmpName(z.name, d) > 0 || (cmpName(z.name, d) === 0 && (!zoneId || z.id >= zoneId)),
      );
      if (start < 0) start = all.length;
    }
    const page = all.slice(start, start + max);
    const next = all[start + max];
    const zonesXml = page
      .map(
        (z) =>
          `<HostedZone><Id>/hostedzone/${z.id}</Id><Name>${esc(z.name)}</Name><CallerReference>${z.callerReference}</CallerReference>` +
          `<Config><PrivateZone>${z.private}</PrivateZone></Config><ResourceRecordSetCount>${z.sets.length}</ResourceRecordSetCount></HostedZone>`,
      )
      .join('');
    return (
      `<?xml version="1.0"?>\n<ListHostedZonesByNameResponse xmlns="${NS}"><HostedZones>${zonesXml}</HostedZones>` +
      (dnsname ? `<DNSName>${esc(norm(dnsname))}</DNSName>` : '') +
      `<IsTruncated>${next ? 'true' : 'false'}</IsTruncated>` +
      (next
        ? `<NextDNSName>${esc(next.name)}</NextDNSName><NextHostedZoneId>${next.id}</NextHostedZoneId>`
        : '') +
      `<MaxItems>${max}</MaxItems></ListHostedZonesByNameResponse>`
    );
  }

  private listResourceRecordSets(zone: FakeZone, q: URLSearchParams): string {
    const name = q.get('name');
    const type = q.get('type')?.toUpperCase();
    if (type && !name)
      throw new ApiError(400, 'InvalidInput', 'The input is not valid: type requires name.');
    const max = Math.min(clampItems(q.get('maxitems'), 300), this.maxItemsCap);
    const sets = [...zone.sets].sort(
      (a, b) => cmpName(a.name, b.name) || (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
    );
    let start = 0;
    if (name) {
      const n = norm(name);
      start = sets.findIndex((s) => {
        const c = cmpName(s.name, n);
        return c > 0 || (c === 0 && (!type || s.type >= type));
      });
      if (start < 0) start = sets.length;
    }
    const page = sets.slice(start, start + max);
    const next = sets[start + max];
    const setsXml = page
      .map(
        (s) =>
          `<ResourceRecordSet><Name>${esc(s.name)}</Name><Type>${s.type}</Type><TTL>${s.ttl}</TTL><ResourceRecords>` +
          s.values
            .map((v) => `<ResourceRecord><Value>${esc(v)}</Value></ResourceRecord>`)
            .join('') +
          `</ResourceRecords></ResourceRecordSet>`,
      )
      .join('');
    return (
      `<?xml version="1.0"?>\n<ListResourceRecordSetsResponse xmlns="${NS}"><ResourceRecordSets>${setsXml}</ResourceRecordSets>` +
      `<IsTruncated>${next ? 'true' : 'false'}</IsTruncated>` +
      (next
        ? `<NextRecordName>${esc(next.name)}</NextRecordName><NextRecordType>${next.type}</NextRecordType>`
        : '') +
      `<MaxItems>${max}</MaxItems></ListResourceRecordSetsResponse>`
    );
  }

  private changeResourceRecordSets(entry: LoggedRequest, zone: FakeZone, body: string): string {
    for (const fn of this.beforeChange.splice(0)) fn();
    let root: XmlNode;
    try {
      root = parseXml(body);
    } catch (e) {
      throw new ApiError(400, 'InvalidInput', `Invalid XML: ${(e as Error).message}`);
    }
    const batch = child(root, 'ChangeBatch');
    const changes = child(batch, 'Changes')?.children.filter((c) => c.name === 'Change') ?? [];
    if (!batch || changes.length === 0)
      throw new ApiError(
        400,
        'InvalidInput',
        'Invalid request: Expected exactly one of [Changes], but found none.',
      );
    if (changes.length > 100)
      throw new ApiError(
        400,
        'InvalidChangeBatch',
        `[Number of changes in the change batch exceeds the maximum allowed: 100]`,
      );
    const work = zone.sets.map((s) => ({ ...s, values: [...s.values] }));
    const errors: string[] = [];
    const described: string[] = [];
    for (const c of changes) {
      const action = child(c, 'Action')?.text.trim() ?? '';
      const rrs = child(c, 'ResourceRecordSet');
      const set: FakeRRSet = {
        name: norm(child(rrs, 'Name')?.text.trim() ?? ''),
        type: (child(rrs, 'Type')?.text.trim() ?? '').toUpperCase(),
        ttl: Number(child(rrs, 'TTL')?.text.trim() ?? NaN),
        values:
          child(rrs, 'ResourceRecords')
            ?.children.filter((r) => r.name === 'ResourceRecord')
            .map((r) => child(r, 'Value')?.text ?? '') ?? [],
      };
      described.push(`${action} ${set.name} ${set.type} ${set.ttl} [${set.values.join(' | ')}]`);
      const err = applyChange(work, zone, action, set);
      if (err) errors.push(err);
    }
    entry.detail = described.join('; ');
    if (errors.length) throw new ApiError(400, 'InvalidChangeBatch', `[${errors.join(', ')}]`);
    zone.sets = work;
    const id = `C${randomBytes(8).toString('hex').toUpperCase()}`;
    const comment = child(batch, 'Comment')?.text;
    const submittedAt = new Date();
    this.changes.set(id, {
      submittedAt,
      syncAt: submittedAt.getTime() + this.changeSyncMs,
      ...(comment ? { comment } : {}),
    });
    return `<?xml version="1.0"?>\n<ChangeResourceRecordSetsResponse xmlns="${NS}">${changeInfo(id, this.changeSyncMs > 0 ? 'PENDING' : 'INSYNC', submittedAt, comment)}</ChangeResourceRecordSetsResponse>`;
  }
}

/** One change against the working copy; returns the service's message on failure. */
function applyChange(
  work: FakeRRSet[],
  zone: FakeZone,
  action: string,
  set: FakeRRSet,
): string | undefined {
  const idx = work.findIndex((s) => s.name === set.name && s.type === set.type);
  const id = `[name='${set.name}', type='${set.type}']`;
  if (!(set.name === zone.name || set.name.endsWith(`.${zone.name}`)))
    return `RRSet with DNS name ${set.name} is not permitted in zone ${zone.name}`;
  if (action === 'DELETE') {
    if (idx < 0) return `Tried to delete resource record set ${id} but it was not found`;
    const cur = work[idx]!;
    if (cur.ttl !== set.ttl || !sameValues(cur.values, set.values))
      return `Tried to delete resource record set ${id} but the values provided do not match the current values`;
    work.splice(idx, 1);
    return undefined;
  }
  if (action !== 'CREATE' && action !== 'UPSERT') return `Invalid action ${action}`;
  if (!Number.isInteger(set.ttl) || set.ttl < 0 || set.ttl > 2147483647)
    return `Invalid TTL for ${id}`;
  if (set.values.length === 0)
    return `Invalid request: Expected at least one ResourceRecord for ${id}`;
  const dup = set.values.find((v, i) => set.values.indexOf(v) !== i);
  if (dup !== undefined) return `Duplicate Resource Record: '${dup}'`;
  if (set.type === 'TLSA') {
    const bad = set.values.find((v) => !/^[0-3] [01] [0-2] [0-9a-fA-F]+$/.test(v.trim()));
    if (bad !== undefined)
      return `Invalid Resource Record: 'FATAL problem: InvalidTLSA (Value is not usage selector matching-type hex) encountered with '${bad}''`;
  }
  if (set.type === 'TXT' || set.type === 'SPF') {
    for (const v of set.values) {
      const bad = txtValueError(v);
      if (bad) return `Invalid Resource Record: 'FATAL problem: ${bad} encountered with '${v}''`;
    }
  }
  if (action === 'CREATE' && idx >= 0)
    return `Tried to create resource record set ${id} but it already exists`;
  const others = work.filter((s) => s.name === set.name && s.type !== set.type);
  if (set.type !== 'CNAME' && others.some((s) => s.type === 'CNAME')) {
    return `RRSet of type ${set.type} with DNS name ${set.name} is not permitted because a conflicting RRSet of type  CNAME with the same DNS name already exists in zone ${zone.name}`;
  }
  if (set.type === 'CNAME' && others.length)
    return `RRSet of type CNAME with DNS name ${set.name} is not permitted as it conflicts with other records with the same DNS name in zone ${zone.name}`;
  if (idx >= 0) work.splice(idx, 1, { ...set });
  else work.push({ ...set });
  return undefined;
}

/** Route 53's TXT value rule: one or more character-strings, each in double quotes (`\"`
 *  and `\\` escaped, other bytes as \ooo octal), each at most 255 characters; the service's
 *  words for what breaks it. */
function txtValueError(value: string): string | undefined {
  const strings = /^\s*(?:"(?:[^"\\]|\\.)*"\s*)+$/.test(value)
    ? [...value.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!)
    : undefined;
  if (!strings) return 'InvalidCharacterString (Value should be enclosed in quotation marks)';
  const length = (s: string) => s.replace(/\\[0-7]{3}|\\./g, 'x').length;
  if (strings.some((s) => length(s) > 255)) return 'CharacterStringTooLong (Value is too long)';
  return undefined;
}

function operationOf(method: string, path: string): string {
  if (path === '/2013-04-01/hostedzonesbyname') return 'ListHostedZonesByName';
  if (/^\/2013-04-01\/hostedzone\/[^/]+\/rrset$/.test(path))
    return method === 'POST' ? 'ChangeResourceRecordSets' : 'ListResourceRecordSets';
  if (/^\/2013-04-01\/change\/[^/]+$/.test(path)) return 'GetChange';
  return `${method} ${path}`;
}

function resourceArn(op: string, path: string): string {
  const zone = /hostedzone\/([^/]+)/.exec(path)?.[1];
  const change = /change\/([^/]+)/.exec(path)?.[1];
  if (zone) return `arn:aws:route53:::hostedzone/${zone}`;
  if (change) return `arn:aws:route53:::change/${change}`;
  return op === 'ListHostedZonesByName' ? '*' : 'arn:aws:route53:::*';
}

function changeInfo(id: string, status: string, submittedAt: Date, comment?: string): string {
  return `<ChangeInfo><Id>/change/${id}</Id><Status>${status}</Status><SubmittedAt>${submittedAt.toISOString()}</SubmittedAt>${comment ? `<Comment>${esc(comment)}</Comment>` : ''}</ChangeInfo>`;
}

function send(res: ServerResponse, status: number, xml: string): void {
  res.writeHead(status, {
    'content-type': 'text/xml',
    'x-amzn-requestid': randomUUID(),
    'content-length': Buffer.byteLength(xml),
  });
  res.end(xml);
}

/** Lower case, trailing dot, octal escapes (\052) decoded. */
function norm(name: string): string {
  let n = name
    .trim()
    .toLowerCase()
    .replace(/\\(\d{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  if (!n.endsWith('.')) n += '.';
  return n;
}

/** DNS names ordered as Route 53 lists them: labels reversed, compared label by label. */
function cmpName(a: string, b: string): number {
  const A = a.replace(/\.$/, '').split('.').reverse();
  const B = b.replace(/\.$/, '').split('.').reverse();
  for (let i = 0; i < Math.min(A.length, B.length); i++) {
    if (A[i] !== B[i]) return A[i]! < B[i]! ? -1 : 1;
  }
  return A.length - B.length;
}

function clampItems(v: string | null, def: number): number {
  const n = v === null ? def : Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new ApiError(400, 'InvalidInput', `The input is not valid: maxitems ${v}`);
  return Math.min(n, 300);
}

function sameValues(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((v, i) => v === sb[i]);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(',') : v;
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string): Buffer =>
  createHmac('sha256', key).update(data).digest();
const rfc3986 = (s: string): string =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

// ---------------------------------------------------------------------------------------------
// A small XML reader: enough for the SDK's request bodies (elements, text, entities).

interface XmlNode {
  name: string;
  children: XmlNode[];
  text: string;
}

function parseXml(src: string): XmlNode {
  const root: XmlNode = { name: '#document', children: [], text: '' };
  const stack: XmlNode[] = [root];
  const re =
    /<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<\/([A-Za-z_][\w.:-]*)\s*>|<([A-Za-z_][\w.:-]*)((?:\s+[^\s=>/]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(src))) {
    if (m.index !== consumed) throw new Error(`unexpected input at ${consumed}`);
    consumed = re.lastIndex;
    const top = stack[stack.length - 1]!;
    if (m[1]) {
      if (top.name !== m[1]) throw new Error(`</${m[1]}> closes <${top.name}>`);
      stack.pop();
    } else if (m[2]) {
      const node: XmlNode = { name: m[2].replace(/^.*:/, ''), children: [], text: '' };
      top.children.push(node);
      if (!m[4]) stack.push(node);
    } else if (m[5]) {
      top.text += unescapeXml(m[5]);
    }
  }
  if (consumed !== src.length || stack.length !== 1) throw new Error('unbalanced document');
  const doc = root.children[0];
  if (!doc) throw new Error('empty document');
  return doc;
}

function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return node?.children.find((c) => c.name === name);
}

function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e[0] === '#')
      return String.fromCodePoint(
        e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10),
      );
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!;
  });
}
