/**
 * desec: the deSEC DNS API (https://desec.io/api/v1, documented at desec.readthedocs.io).
 *
 * Credentials: `token`, a deSEC API token, sent as `Authorization: Token <token>`. Write it as
 *              `token: ${DESEC_TOKEN}` (from the environment) or `token_file: PATH` (mode 0600).
 *              It is never printed.
 * Options:     token (required); domain (optional, e.g. `example.org`); api_url
 *              (`https://desec.io/api/v1`); timeout_s (30, per request); settle_ms (250: the
 *              wait before reading back a write, see Concurrency); max_wait_s (120: the longest
 *              Retry-After that is waited out).
 * Privileges:  any token can read every RRset of the account. Write access can be narrowed with
 *              token scoping policies (`POST /auth/tokens/{id}/policies/rrsets/`, needs a token
 *              with perm_manage_tokens): a default policy `{"domain": null, "subname": null,
 *              "type": null, "perm_write": false}`, then one per TLSA owner name, e.g.
 *              `{"domain": "example.org", "subname": "_25._tcp.mx", "type": "TLSA",
 *              "perm_write": true}`. Policies match exact subnames (no patterns), so each port
 *              and host needs its own. Leave perm_manage_tokens, perm_create_domain and
 *              perm_delete_domain off; `allowed_subnets` can pin the token to the host. A write
 *              the policies do not allow is answered 403.
 * Zone:        the `domain` option (`GET /domains/NAME/`), or else the account's domain that is
 *              responsible for the owner name (`GET /domains/?owns_qname=OWNER`: the longest
 *              suffix; for a batch of several names, `GET /domains/` once instead). The owner's
 *              subname is relative to that domain (`_25._tcp.mx`).
 * Writes:      RRsets are written whole, with one bulk `PATCH /domains/D/rrsets/` (`records: []`
 *              deletes one). apply sends one RRset; applyMany every changed RRset of a domain in
 *              the same single request (atomic: all or nothing). A bulk request counts once
 *              against the write limits. The TTL is the requested one when records are added,
 *              else the RRset's own. An owner's adds and removes go in one write of its whole
 *              RRset; a record named in both is kept (add wins).
 * TTL:         deSEC refuses TTLs below the domain's `minimum_ttl` (3600 for most domains). A
 *              lower TTL is raised to it and said so: a warning on stderr (once per domain and
 *              TTL) and in the provider's `notices`; `effectiveTtl(owner, ttl)` tells a caller the
 *              TTL that will really be published. tlsa's rollover waits count from the TTL in the
 *              configuration: set it to at least the minimum.
 * Reads:       one name: `GET /domains/D/rrsets/?subname=S` (all types at the name, to see a
 *              CNAME). Several names (applyMany): the domain's RRsets at once,
 *              `GET /domains/D/rrsets/?cursor=`; listMany: `?type=TLSA&cursor=`. deSEC pages
 *              them by 500 (cursor pagination, `Link` rel="first"/"next"; a listing over 500
 *              without `cursor` is answered 400 with a `first` link, which is followed). Links
 *              are followed only on the api_url's own origin.
 * Requests:    (plus one domain read per provider instance: `GET /domains/D/` with the option,
 *              else one `?owns_qname=` per name, or one `GET /domains/` for a batch.)
 *              list: 1 read. listMany: ⌈TLSA RRsets of the domain / 500⌉ reads. apply: 1 read,
 *              1 write, 1 read back. applyMany of N names of a domain: 1 write and 2 reads of
 *              ⌈RRsets of the domain / 500⌉ pages each, whatever N; each repair round adds 1
 *              write of just the names that need it and 1 read. A loop over N names would cost
 *              N writes, which the per-domain write limit (15/min) turns into minutes.
 * CNAME:       a CNAME at an owner name is found by the read before any write and reported,
 *              naming the owner; in a batch nothing is written when any owner has one (deSEC
 *              itself answers 400 "RRset with conflicting type present ... (No other RRsets are
 *              allowed alongside CNAME.)", per item in a bulk request).
 * Concurrency: no conditional write: apply/applyMany read the RRsets, compute each new set
 *              (keep every record not named in `remove`, add ours), write them, wait `settle_ms`
 *              (jittered), read back once, and check for every owner written that our adds are
 *              there, our removes are gone and every record that was there before our write
 *              (and not removed by us) is still there; while an RRset's `touched` stamp shows
 *              writes after ours, look again after another pause. Owners that fail the check
 *              are written again (one bulk PATCH of just those, on what the read-back saw; 6
 *              rounds at most). Residual race: a writer that read before our write and writes
 *              its stale set only after our last read-back removes our records unseen; the
 *              window is its read-to-write time. The next run sees the loss (list, DNS checks)
 *              and repairs it.
 * Limits:      reads ("dns_api_cheap") 10/s and 50/min; RRset writes per domain 2/s, 15/min,
 *              100/h, 300/day; 2000 requests/day per account (see Requests for what each call
 *              costs). 429 carries `Retry-After`: it is waited out up to max_wait_s, else the run
 *              fails and says when to retry. 5xx and network errors are retried with backoff (5
 *              attempts). A failed write is not re-sent as it was (it may be stale by then): the
 *              RRsets are read again and the sets recomputed. Errors: 401 `{"detail": "Invalid
 *              token."}`; 403 `{"detail": "You do not have permission to perform this
 *              action."}`; 404 `{"detail": "Not found."}` for a domain not in the account; 400
 *              with field errors, a list of them (one per item) for bulk requests.
 */
import { redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { exchangeJson, Transient } from './http.js';
import { DESEC_OPTIONS } from './desec-options.js';
import { readOptions } from './options.js';
import {
  checkChangeOwners,
  ProviderError,
  type DnsProvider,
  type ProviderFactory,
  type TlsaChange,
} from './index.js';

/** The desec provider also says which TTL it really publishes. */
export interface DesecProvider extends DnsProvider {
  /** Messages about changes the API forced (a raised TTL), newest last. */
  readonly notices: string[];
  /** The TTL that apply(owner, …, ttl) will publish: ttl raised to the domain's minimum_ttl. */
  effectiveTtl(owner: string, ttl: number): Promise<number>;
}

interface Domain {
  name: string;
  minimumTtl: number;
}

interface RRset {
  subname: string;
  type: string;
  ttl: number;
  records: string[];
  /** Set by deSEC on every write to the RRset, also one that changes nothing. */
  touched?: string;
}

interface NameState {
  tlsa?: RRset;
  cname?: string;
}

/** One owner's change, as applyMany works on it. */
interface Want {
  owner: string;
  subname: string;
  /** `u s m hex` of the records to add. */
  addKeys: string[];
  /** Of the records to remove (those also named in add are left out: add wins). */
  removeKeys: Set<string>;
  /** The TTL to write (raised to the domain minimum) when records are added; otherwise the
   *  RRset keeps its own. */
  ttl?: number;
}

/** One RRset to write, and what was there when it was computed. */
interface Write {
  want: Want;
  before: string[];
  records: string[];
}

/** A 429 whose Retry-After is longer than we are willing to wait. */
class Throttled extends Error {
  constructor(readonly seconds: number) {
    super(`throttled for ${seconds} s`);
  }
}

class HttpFailure extends Error {
  /** `body`: the parsed error body (a list with one object per item for bulk requests). */
  constructor(
    readonly status: number,
    readonly messages: string[],
    readonly body?: unknown,
  ) {
    super(messages.join('; '));
  }
}

const MAX_ROUNDS = 6;
/** Attempts per request (and failed writes per apply) before giving up. */
const ATTEMPTS = 5;
const warned = new Set<string>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function contentKey(content: string): string {
  try {
    return rdataText(parseRdata(content));
  } catch {
    return `raw:${content.trim().replace(/\s+/g, ' ').toLowerCase()}`;
  }
}

/** Every message string in a DRF error body: {"detail": …}, {"field": […]}, [{…}, {…}]. */
function messagesOf(body: unknown): string[] {
  if (typeof body === 'string') return [body];
  if (Array.isArray(body)) return body.flatMap(messagesOf);
  if (body && typeof body === 'object') {
    return Object.entries(body).flatMap(([k, v]) =>
      messagesOf(v).map((m) => (k === 'detail' || k === 'non_field_errors' ? m : `${k}: ${m}`)),
    );
  }
  return [];
}

/** `<url>; rel="next", <url>; rel="first"` → { next: url, first: url }. */
function parseLinks(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of (header ?? '').matchAll(/<([^>]*)>\s*;\s*rel="?([a-z]+)"?/gi))
    out[m[2]!.toLowerCase()] = m[1]!;
  return out;
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(DESEC_OPTIONS, options, ctx);
  const token = opt.token;
  const rawUrl = opt.api_url;
  let api: URL;
  try {
    api = new URL(rawUrl.replace(/\/+$/, ''));
    if (api.protocol !== 'https:' && api.protocol !== 'http:') throw new Error('scheme');
  } catch {
    throw ctx.optionError(
      'api_url',
      `"api_url" must be an http(s) URL such as https://desec.io/api/v1 (got "${rawUrl}")`,
    );
  }
  const apiBase = `${api.origin}${api.pathname}`;
  const domainOpt = opt.domain;
  let fixedDomain: string | undefined;
  try {
    fixedDomain = domainOpt ? normaliseName(domainOpt).slice(0, -1) : undefined;
  } catch (e) {
    throw ctx.optionError('domain', (e as Error).message);
  }
  const timeoutMs = opt.timeout_s * 1000;
  const settleMs = opt.settle_ms;
  const maxWaitS = opt.max_wait_s;
  const name = `desec(${ctx.instance})`;
  const notices: string[] = [];
  const fail = (message: string): ProviderError => new ProviderError(name, redact(message));

  interface Answer {
    status: number;
    body: unknown;
    links: Record<string, string>;
  }

  /** One exchange with retries; returns 2xx answers, throws HttpFailure for other 4xx. */
  async function exchange(
    method: string,
    url: string,
    what: string,
    body?: unknown,
    okStatuses: number[] = [],
    opts: { once?: boolean } = {},
  ): Promise<Answer> {
    if (new URL(url).origin !== api.origin)
      throw fail(`refusing to follow a link off ${api.origin} (${what}): ${url}`);
    const once = async (): Promise<Answer> => {
      const { res, text, json } = await exchangeJson(
        url,
        { method, headers: { Authorization: `Token ${token!}` }, body, timeoutMs },
        `the deSEC API at ${api.origin} (${what})`,
      );
      const links = parseLinks(res.headers.get('link'));
      if (res.ok || okStatuses.includes(res.status))
        return { status: res.status, body: json, links };
      const messages =
        json === undefined ? [text.trim().slice(0, 300) || res.statusText] : messagesOf(json);
      if (res.status === 429) {
        const seconds = Number(res.headers.get('retry-after') ?? '1');
        const wait = Number.isFinite(seconds) && seconds >= 0 ? seconds : 1;
        if (wait > maxWaitS) throw new Throttled(wait);
        throw new Transient(`deSEC API ${what}: HTTP 429 ${messages.join('; ')}`, wait * 1000);
      }
      if (res.status >= 500)
        throw new Transient(`deSEC API ${what}: HTTP ${res.status} ${messages.join('; ')}`);
      if (res.status === 401)
        throw fail(`token rejected (HTTP 401: ${messages.join('; ')}); check "token"`);
      throw new HttpFailure(res.status, messages, json);
    };
    // A write is never re-sent as it was: its body may be stale by then (apply reads again).
    const attempt = opts.once
      ? once()
      : withRetry(once, {
          attempts: ATTEMPTS,
          baseDelayMs: 250,
          maxDelayMs: Math.max(5_000, maxWaitS * 1000),
          isRetryable: (e) => e instanceof Transient,
          retryAfterMs: (e) => (e instanceof Transient ? e.retryAfterMs : undefined),
        });
    return attempt.catch((e: unknown) => {
      if (e instanceof Transient && !opts.once)
        throw fail(`${e.message} (gave up after ${ATTEMPTS} attempts)`);
      if (e instanceof Throttled) throw throttledError(what, e.seconds);
      throw e;
    });
  }

  const throttledError = (what: string, seconds: number) =>
    fail(
      `rate limited by deSEC (${what}): it asks to wait ${seconds} s, more than max_wait_s (${maxWaitS}); re-run after that (RRset writes are limited per domain to 2/s, 15/min, 100/h, 300/day)`,
    );

  /** GET a list, following deSEC's cursor pagination when it asks for it. */
  async function getList(path: string, what: string): Promise<unknown[]> {
    let answer = await exchange('GET', `${apiBase}${path}`, what, undefined, [400]);
    if (answer.status === 400) {
      if (!answer.links.first) throw new HttpFailure(400, messagesOf(answer.body));
      answer = await exchange('GET', answer.links.first, what);
    }
    const items: unknown[] = [];
    for (let page = 0; ; page++) {
      if (!Array.isArray(answer.body)) throw fail(`unexpected answer (${what}): not a list`);
      items.push(...answer.body);
      const next = answer.links.next;
      if (!next) return items;
      if (page > 1000) throw fail(`more than 1000 pages (${what})`);
      answer = await exchange('GET', next, what);
    }
  }

  const domains = new Map<string, Promise<Domain>>();
  const toDomain = (d: { name?: unknown; minimum_ttl?: unknown }): Domain | undefined =>
    typeof d?.name === 'string'
      ? {
          name: d.name.toLowerCase().replace(/\.$/, ''),
          minimumTtl: typeof d.minimum_ttl === 'number' ? d.minimum_ttl : 3600,
        }
      : undefined;

  function domainFor(owner: string): Promise<Domain> {
    const cacheKey = fixedDomain ?? owner;
    let p = domains.get(cacheKey);
    if (p) return p;
    p = (async (): Promise<Domain> => {
      if (fixedDomain) {
        try {
          const a = await exchange(
            'GET',
            `${apiBase}/domains/${encodeURIComponent(fixedDomain)}/`,
            `reading domain ${fixedDomain}`,
          );
          const d = toDomain(a.body as { name?: unknown });
          if (!d) throw fail(`unexpected answer for domain ${fixedDomain}`);
          return d;
        } catch (e) {
          if (e instanceof HttpFailure && e.status === 404)
            throw fail(
              `domain (zone) ${fixedDomain} not found in this deSEC account (option "domain")`,
            );
          if (e instanceof HttpFailure)
            throw fail(`reading domain ${fixedDomain}: HTTP ${e.status} ${e.message}`);
          throw e;
        }
      }
      let list: unknown[];
      try {
        list = await getList(
          `/domains/?owns_qname=${encodeURIComponent(owner.slice(0, -1))}`,
          `finding the domain of ${owner}`,
        );
      } catch (e) {
        if (e instanceof HttpFailure)
          throw fail(`finding the domain of ${owner}: HTTP ${e.status} ${e.message}`);
        throw e;
      }
      const best = list
        .map((x) => toDomain(x as { name?: unknown }))
        .filter(
          (d): d is Domain =>
            d !== undefined && (owner === `${d.name}.` || owner.endsWith(`.${d.name}.`)),
        )
        .sort((a, b) => b.name.length - a.name.length)[0];
      if (!best)
        throw fail(
          `no domain (zone) in this deSEC account contains ${owner}; add the domain to the account or set the option "domain"`,
        );
      return best;
    })();
    domains.set(cacheKey, p);
    p.catch(() => domains.delete(cacheKey));
    return p;
  }

  function subnameOf(owner: string, d: Domain): string {
    if (owner === `${d.name}.`) return '';
    if (!owner.endsWith(`.${d.name}.`))
      throw fail(`${owner} is not in domain ${d.name} (option "domain")`);
    return owner.slice(0, -(d.name.length + 2));
  }

  /** The TLSA and CNAME RRsets at `subnames`. One subname: `?subname=S` (all types at the
   *  name). Several: the whole domain at once, page by page (`?cursor=`, 500 RRsets a page),
   *  or only its TLSA RRsets with `tlsaOnly` (listing needs no CNAME). */
  async function readNames(
    d: Domain,
    subnames: Set<string>,
    tlsaOnly = false,
  ): Promise<Map<string, NameState>> {
    const one = subnames.size === 1 ? [...subnames][0]! : undefined;
    const path =
      one !== undefined
        ? `/domains/${encodeURIComponent(d.name)}/rrsets/?subname=${encodeURIComponent(one)}`
        : // `cursor=` (empty) is deSEC's own `first` page link: no 400 "Pagination required" first.
          `/domains/${encodeURIComponent(d.name)}/rrsets/?${tlsaOnly ? 'type=TLSA&' : ''}cursor=`;
    const what =
      one !== undefined
        ? `reading ${one || '@'} in ${d.name}`
        : `reading ${tlsaOnly ? 'the TLSA RRsets of ' : ''}${d.name}`;
    let list: unknown[];
    try {
      list = await getList(path, what);
    } catch (e) {
      if (e instanceof HttpFailure && e.status === 404)
        throw fail(`domain (zone) ${d.name} not found in this deSEC account`);
      if (e instanceof HttpFailure) throw fail(`${what}: HTTP ${e.status} ${e.message}`);
      throw e;
    }
    const out = new Map<string, NameState>();
    for (const r of list as RRset[]) {
      if (typeof r?.subname !== 'string' || !subnames.has(r.subname)) continue;
      let state = out.get(r.subname);
      if (!state) {
        state = {};
        out.set(r.subname, state);
      }
      if (r.type === 'TLSA') {
        state.tlsa = {
          subname: r.subname,
          type: 'TLSA',
          ttl: r.ttl,
          records: Array.isArray(r.records) ? r.records.filter((x) => typeof x === 'string') : [],
          ...(typeof r.touched === 'string' ? { touched: r.touched } : {}),
        };
      } else if (r.type === 'CNAME') state.cname = r.records?.[0] ?? '?';
    }
    return out;
  }

  const cnameMessage = (owner: string, d: Domain, target?: string) =>
    `${owner} has a CNAME${target ? ` (to ${target})` : ''} in deSEC domain ${d.name}; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME`;

  /** A CNAME at any of these owners fails the whole batch, naming each, before any write. */
  function checkCnames(d: Domain, wants: Want[], state: Map<string, NameState>): void {
    const found = wants.flatMap((w) => {
      const target = state.get(w.subname)?.cname;
      return target === undefined ? [] : [{ owner: w.owner, target }];
    });
    const first = found[0];
    if (!first) return;
    const more =
      found.length > 1
        ? `; CNAMEs also at ${found
            .slice(1)
            .map((c) => `${c.owner} (to ${c.target})`)
            .join(', ')}`
        : '';
    throw fail(`${cnameMessage(first.owner, d, first.target)}${more}`);
  }

  /** Write these whole TLSA RRsets in ONE bulk PATCH (atomic; counted once against the write
   *  limits); returns each written RRset's `touched` stamp by subname (none if deleted). */
  async function write(d: Domain, writes: Write[]): Promise<Map<string, string | undefined>> {
    const items = writes.map((w) => ({
      subname: w.want.subname,
      type: 'TLSA',
      records: w.records,
      ...(w.want.ttl !== undefined && w.records.length ? { ttl: w.want.ttl } : {}),
    }));
    const first = writes[0]!.want;
    const what =
      writes.length === 1
        ? `writing ${first.owner} TLSA`
        : `writing TLSA at ${writes.length} names in ${d.name}`;
    try {
      const a = await exchange(
        'PATCH',
        `${apiBase}/domains/${encodeURIComponent(d.name)}/rrsets/`,
        what,
        items,
        [],
        { once: true },
      );
      const answer = Array.isArray(a.body) ? (a.body as RRset[]) : [];
      return new Map(
        writes.map((w) => {
          const written = answer.find((r) => r?.type === 'TLSA' && r.subname === w.want.subname);
          return [
            w.want.subname,
            typeof written?.touched === 'string' ? written.touched : undefined,
          ];
        }),
      );
    } catch (e) {
      if (!(e instanceof HttpFailure)) throw e;
      if (e.status === 404) throw fail(`domain (zone) ${d.name} not found in this deSEC account`);
      if (e.status === 403) {
        const subs = writes.map((w) => w.want.subname);
        if (subs.length === 1)
          throw fail(
            `the token may not write TLSA at "${first.subname}" in domain ${d.name} (HTTP 403: ${e.message}); give it a scoping policy {"domain": "${d.name}", "subname": "${first.subname}", "type": "TLSA", "perm_write": true}`,
          );
        const shown =
          subs
            .slice(0, 10)
            .map((s) => `"${s}"`)
            .join(', ') + (subs.length > 10 ? `, … (${subs.length} in all)` : '');
        throw fail(
          `the token may not write TLSA at one or more of ${shown} in domain ${d.name} (HTTP 403: ${e.message}); give it a scoping policy {"domain": "${d.name}", "subname": SUBNAME, "type": "TLSA", "perm_write": true} for each`,
        );
      }
      // Bulk errors are a list with one object per item (`{}` when fine): name the owners.
      const itemErrors: unknown[] | undefined =
        Array.isArray(e.body) && e.body.length === writes.length ? e.body : undefined;
      const perItem = itemErrors
        ? writes
            .map((w, i) => ({ owner: w.want.owner, messages: messagesOf(itemErrors[i]) }))
            .filter((x) => x.messages.length)
        : [];
      const cname = perItem.find((x) => x.messages.some((m) => /alongside CNAME/i.test(m)));
      if (cname) throw fail(cnameMessage(cname.owner, d));
      if (writes.length === 1 && e.messages.some((m) => /alongside CNAME/i.test(m)))
        throw fail(cnameMessage(first.owner, d));
      if (writes.length === 1 || !perItem.length)
        throw fail(
          `deSEC rejected the TLSA RRset${writes.length === 1 ? ` at ${first.owner}` : `s of ${writes.length} names in ${d.name}`} (HTTP ${e.status}): ${e.message}`,
        );
      throw fail(
        `deSEC rejected TLSA RRsets in ${d.name} (HTTP ${e.status}): ${perItem.map((x) => `${x.owner}: ${x.messages.join('; ')}`).join('; ')}`,
      );
    }
  }

  function ttlFor(owner: string, d: Domain, ttl: number): number {
    if (ttl >= d.minimumTtl) return ttl;
    const msg = `${owner}: TTL ${ttl} is below deSEC's minimum TTL ${d.minimumTtl} for ${d.name}; publishing with TTL ${d.minimumTtl}. Set the service's ttl to at least ${d.minimumTtl}: rollover waits are counted from the configured TTL`;
    if (!notices.includes(msg)) notices.push(msg);
    const once = `${d.name}|${ttl}|${d.minimumTtl}`;
    if (!warned.has(once)) {
      warned.add(once);
      process.stderr.write(
        `tlsa: warning: ${name}: TTL ${ttl} is below deSEC's minimum TTL ${d.minimumTtl} for ${d.name}; records are published with TTL ${d.minimumTtl} (set ttl ≥ ${d.minimumTtl})\n`,
      );
    }
    return d.minimumTtl;
  }

  const checkOwners = (owner: string, change: TlsaChange): void =>
    checkChangeOwners(name, owner, change);

  function compute(w: Want, current: string[]): string[] {
    const out = current.filter((r) => !w.removeKeys.has(contentKey(r)));
    for (const k of w.addKeys) {
      if (!out.some((r) => contentKey(r) === k)) out.push(k);
    }
    return out;
  }
  function same(a: string[], b: string[]): boolean {
    const ka = a.map(contentKey).sort();
    const kb = b.map(contentKey).sort();
    return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
  }
  /** Did our write survive, and did it not erase what was there before it? */
  function settled(w: Want, after: string[], before: string[]): boolean {
    const present = new Set(after.map(contentKey));
    return (
      w.addKeys.every((k) => present.has(k)) &&
      [...w.removeKeys].every((k) => !present.has(k)) &&
      before.every((r) => w.removeKeys.has(contentKey(r)) || present.has(contentKey(r)))
    );
  }

  /** Read-modify-write of several owners of one domain: one read, one bulk PATCH, one
   *  read-back, and repair rounds (one bulk PATCH each) for just the owners that need it. */
  async function applyDomain(d: Domain, wants: Want[]): Promise<void> {
    let pending = wants;
    let state = await readNames(d, new Set(pending.map((w) => w.subname)));
    checkCnames(d, pending, state);
    let failedWrites = 0;
    for (let round = 1; round <= MAX_ROUNDS; ) {
      const writes: Write[] = [];
      for (const want of pending) {
        const before = state.get(want.subname)?.tlsa?.records ?? [];
        const records = compute(want, before);
        if (!same(before, records)) writes.push({ want, before, records });
      }
      if (!writes.length) return;
      let touched: Map<string, string | undefined>;
      try {
        touched = await write(d, writes);
      } catch (e) {
        // 429 (after its Retry-After), 5xx, network: read again and recompute, never re-send.
        if (!(e instanceof Transient)) throw e;
        if (++failedWrites >= ATTEMPTS)
          throw fail(`${e.message} (gave up after ${ATTEMPTS} attempts)`);
        await sleep(
          e.retryAfterMs ??
            Math.round(Math.random() * Math.min(5_000, 250 * 2 ** (failedWrites - 1))),
        );
        state = await readNames(d, new Set(pending.map((w) => w.subname)));
        checkCnames(d, pending, state);
        continue;
      }
      // Read back after a pause, once for every owner written. While an RRset's `touched`
      // shows writes after ours, look again after another pause: a writer that read before our
      // write may not have written yet.
      const written = new Set(writes.map((w) => w.want.subname));
      let lost: Want[] = [];
      for (let look = 0; look < MAX_ROUNDS; look++) {
        await sleep(Math.round(settleMs * (0.5 + Math.random())));
        state = await readNames(d, written);
        checkCnames(
          d,
          writes.map((w) => w.want),
          state,
        );
        lost = writes
          .filter((w) => !settled(w.want, state.get(w.want.subname)?.tlsa?.records ?? [], w.before))
          .map((w) => w.want);
        let quiet = true;
        for (const s of written) {
          const now = state.get(s)?.tlsa?.touched;
          if (now !== touched.get(s)) quiet = false;
          touched.set(s, now);
        }
        if (lost.length || quiet) break;
      }
      if (!lost.length) return;
      // Another writer changed these RRsets between our read and our read-back: write them
      // again, on what the read-back saw.
      pending = lost;
      round++;
    }
    const names = pending.map((w) => w.owner);
    throw fail(
      `${names.length === 1 ? names[0] : names.join(', ')}: other writers kept changing the TLSA RRset${names.length === 1 ? '' : 's'} in deSEC domain ${d.name}; gave up after ${MAX_ROUNDS} read-modify-write rounds (a re-run repairs it)`,
    );
  }

  /** Owners grouped by domain. Several owners without the option "domain": the account's
   *  domains are read once (`GET /domains/`) instead of one `?owns_qname=` per owner. */
  async function byDomain<T>(
    items: T[],
    ownerOf: (t: T) => string,
  ): Promise<Map<string, { d: Domain; items: T[] }>> {
    const out = new Map<string, { d: Domain; items: T[] }>();
    if (!fixedDomain && new Set(items.map(ownerOf)).size > 1)
      await learnDomains(items.map(ownerOf));
    for (const t of items) {
      const d = await domainFor(ownerOf(t));
      const entry = out.get(d.name);
      if (entry) entry.items.push(t);
      else out.set(d.name, { d, items: [t] });
    }
    return out;
  }

  /** Read every domain of the account once and fill the owner → domain cache for `owners`
   *  (an owner no domain contains is left to domainFor, which says so). */
  let allDomains: Promise<Domain[]> | undefined;
  async function learnDomains(owners: string[]): Promise<void> {
    if (owners.every((o) => domains.has(o))) return;
    allDomains ??= (async () => {
      try {
        return (await getList('/domains/', 'listing the domains of the account'))
          .map((x) => toDomain(x as { name?: unknown }))
          .filter((x): x is Domain => x !== undefined);
      } catch (e) {
        if (e instanceof HttpFailure)
          throw fail(`listing the domains of the account: HTTP ${e.status} ${e.message}`);
        throw e;
      }
    })();
    allDomains.catch(() => {
      allDomains = undefined;
    });
    const all = await allDomains;
    for (const o of owners) {
      if (domains.has(o)) continue;
      const best = all
        .filter((d) => o === `${d.name}.` || o.endsWith(`.${d.name}.`))
        .sort((a, b) => b.name.length - a.name.length)[0];
      if (best) domains.set(o, Promise.resolve(best));
    }
  }

  const recordsOf = (owner: string, state: NameState | undefined): TlsaRecord[] =>
    (state?.tlsa?.records ?? []).flatMap((r) => {
      try {
        return [{ owner, ...parseRdata(r) } as TlsaRecord];
      } catch {
        return [];
      }
    });

  const provider: DesecProvider = {
    name,
    notices,
    async effectiveTtl(ownerIn, ttl) {
      const d = await domainFor(normaliseName(ownerIn));
      return Math.max(ttl, d.minimumTtl);
    },
    async list(ownerIn) {
      const owner = normaliseName(ownerIn);
      const d = await domainFor(owner);
      const subname = subnameOf(owner, d);
      return recordsOf(owner, (await readNames(d, new Set([subname]))).get(subname));
    },
    async listMany(ownersIn) {
      const out = new Map<string, TlsaRecord[]>();
      const owners = [...new Set(ownersIn.map((o) => normaliseName(o)))];
      for (const { d, items } of (await byDomain(owners, (o) => o)).values()) {
        const subs = new Map(items.map((o) => [o, subnameOf(o, d)]));
        const state = await readNames(d, new Set(subs.values()), true);
        for (const [o, s] of subs) out.set(o, recordsOf(o, state.get(s)));
      }
      // Also under the caller's spelling, when it was not the normal form.
      for (const o of ownersIn) if (!out.has(o)) out.set(o, out.get(normaliseName(o)) ?? []);
      return out;
    },
    async apply(ownerIn, change, ttl) {
      await provider.applyMany!(
        [{ owner: ownerIn, add: change.add, remove: change.remove }],
        () => ttl,
      );
    },
    async applyMany(changes, ttlOf) {
      // One Want per owner (changes for the same owner are merged); empty changes cost nothing.
      const merged = new Map<string, { add: TlsaRecord[]; remove: TlsaRecord[]; ttl: number }>();
      for (const c of changes) {
        const owner = normaliseName(c.owner);
        checkOwners(owner, c);
        const m = merged.get(owner);
        if (m) {
          m.add.push(...c.add);
          m.remove.push(...c.remove);
        } else merged.set(owner, { add: [...c.add], remove: [...c.remove], ttl: ttlOf(c.owner) });
      }
      const todo = [...merged].filter(([, m]) => m.add.length || m.remove.length);
      for (const { d, items } of (await byDomain(todo, ([o]) => o)).values()) {
        const wants = items.map(([owner, m]): Want => {
          const addKeys = [...new Set(m.add.map((r) => rdataText(r)))];
          // A record both added and removed stays (add wins, as the provider contract says).
          const removeKeys = new Set(
            m.remove.map((r) => rdataText(r)).filter((k) => !addKeys.includes(k)),
          );
          return {
            owner,
            subname: subnameOf(owner, d),
            addKeys,
            removeKeys,
            ttl: m.add.length ? ttlFor(owner, d, m.ttl) : undefined,
          };
        });
        await applyDomain(d, wants);
      }
    },
  };
  return provider;
};
