/** The deSEC API as the desec provider uses it (desec.ts has the provider's whole story):
 *  authenticated JSON exchanges with retries and Retry-After, cursor pagination, the domain
 *  responsible for an owner name, and the TLSA, TXT and CNAME RRsets at owner names. */
import { EXIT } from '../src/errors.js';
import { exchangeJson, retryTransient, Transient } from './http.js';
import { retryAfterMs } from './kit.js';

export interface Domain {
  name: string;
  minimumTtl: number;
}

export interface RRset {
  subname: string;
  type: string;
  ttl: number;
  records: string[];
  /** Set by deSEC on every write to the RRset, also one that changes nothing. */
  touched?: string;
}

export interface NameState {
  tlsa?: RRset;
  cname?: string;
  txt?: RRset;
}

export interface Answer {
  status: number;
  body: unknown;
  links: Record<string, string>;
}

/** A 4xx other than 401 (and 429), with deSEC's messages; `body` is the parsed error body (a
 *  list with one object per item for bulk requests). */
export class HttpFailure extends Error {
  // deSEC refused the request: a provider error, whether or not the adapter rewords it.
  readonly exitCode = EXIT.provider;
  constructor(
    readonly status: number,
    readonly messages: string[],
    readonly body?: unknown,
  ) {
    super(messages.join('; '));
  }
}

/** A 429 whose Retry-After is longer than we are willing to wait. */
class Throttled extends Error {
  constructor(readonly seconds: number) {
    super(`throttled for ${seconds} s`);
  }
}

/** Attempts per request (and failed writes per apply) before giving up. */
export const ATTEMPTS = 5;

/** Every message string in a DRF error body: {"detail": …}, {"field": […]}, [{…}, {…}]. */
export function messagesOf(body: unknown): string[] {
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

const toDomain = (d: { name?: unknown; minimum_ttl?: unknown }): Domain | undefined =>
  typeof d?.name === 'string'
    ? {
        name: d.name.toLowerCase().replace(/\.$/, ''),
        minimumTtl: typeof d.minimum_ttl === 'number' ? d.minimum_ttl : 3600,
      }
    : undefined;

const inDomain = (owner: string, d: Domain) =>
  owner === `${d.name}.` || owner.endsWith(`.${d.name}.`);

export function desecApi(cfg: {
  api: URL;
  token: string;
  timeoutMs: number;
  maxWaitS: number;
  fixedDomain: string | undefined;
  fail: (message: string) => Error;
}) {
  const { api, fail, maxWaitS, fixedDomain } = cfg;
  const apiBase = `${api.origin}${api.pathname}`;

  /** One exchange with retries (none with `once`: a write is never re-sent as it was, its body
   *  may be stale by then); returns 2xx answers, throws HttpFailure for other 4xx. */
  async function exchange(
    method: string,
    url: string,
    what: string,
    body?: unknown,
    okStatuses: number[] = [],
    once = false,
  ): Promise<Answer> {
    if (new URL(url).origin !== api.origin)
      throw fail(`refusing to follow a link off ${api.origin} (${what}): ${url}`);
    const one = async (): Promise<Answer> => {
      const { res, text, json } = await exchangeJson(
        url,
        {
          method,
          headers: { Authorization: `Token ${cfg.token}` },
          body,
          timeoutMs: cfg.timeoutMs,
        },
        `the deSEC API at ${api.origin} (${what})`,
        fail,
      );
      const links = parseLinks(res.headers.get('link'));
      if (res.ok || okStatuses.includes(res.status))
        return { status: res.status, body: json, links };
      const messages =
        json === undefined ? [text.trim().slice(0, 300) || res.statusText] : messagesOf(json);
      if (res.status === 429) {
        const wait = (retryAfterMs(res.headers) ?? 1000) / 1000;
        if (wait > maxWaitS) throw new Throttled(wait);
        throw new Transient(`deSEC API ${what}: HTTP 429 ${messages.join('; ')}`, wait * 1000);
      }
      if (res.status >= 500)
        throw new Transient(`deSEC API ${what}: HTTP ${res.status} ${messages.join('; ')}`);
      if (res.status === 401)
        throw fail(`token rejected (HTTP 401: ${messages.join('; ')}); check "token"`);
      throw new HttpFailure(res.status, messages, json);
    };
    const limits = {
      attempts: ATTEMPTS,
      baseDelayMs: 250,
      maxDelayMs: Math.max(5_000, maxWaitS * 1000),
    };
    return (once ? one() : retryTransient(one, limits, fail)).catch((e: unknown) => {
      if (e instanceof Throttled)
        throw fail(
          `rate limited by deSEC (${what}): it asks to wait ${e.seconds} s, more than max_wait_s (${maxWaitS}); re-run after that (RRset writes are limited per domain to 2/s, 15/min, 100/h, 300/day)`,
        );
      throw e;
    });
  }

  /** GET a list, following deSEC's cursor pagination when it asks for it; HttpFailures are
   *  reported as `what` failing (a 404 by `notFound`). */
  async function getList(path: string, what: string, notFound?: string): Promise<unknown[]> {
    try {
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
    } catch (e) {
      if (e instanceof HttpFailure && e.status === 404 && notFound) throw fail(notFound);
      if (e instanceof HttpFailure) throw fail(`${what}: HTTP ${e.status} ${e.message}`);
      throw e;
    }
  }

  const domains = new Map<string, Promise<Domain>>();

  async function lookUpDomain(owner: string): Promise<Domain> {
    if (fixedDomain) {
      const what = `reading domain ${fixedDomain}`;
      try {
        const a = await exchange(
          'GET',
          `${apiBase}/domains/${encodeURIComponent(fixedDomain)}/`,
          what,
        );
        const d = toDomain(a.body as { name?: unknown });
        if (!d) throw fail(`unexpected answer for domain ${fixedDomain}`);
        return d;
      } catch (e) {
        if (e instanceof HttpFailure && e.status === 404)
          throw fail(
            `domain (zone) ${fixedDomain} not found in this deSEC account (option "domain")`,
          );
        if (e instanceof HttpFailure) throw fail(`${what}: HTTP ${e.status} ${e.message}`);
        throw e;
      }
    }
    const list = await getList(
      `/domains/?owns_qname=${encodeURIComponent(owner.slice(0, -1))}`,
      `finding the domain of ${owner}`,
    );
    const best = longest(list, owner);
    if (!best)
      throw fail(
        `no domain (zone) in this deSEC account contains ${owner}; add the domain to the account or set the option "domain"`,
      );
    return best;
  }

  const longest = (list: unknown[], owner: string) =>
    list
      .map((x) => toDomain(x as { name?: unknown }))
      .filter((d): d is Domain => d !== undefined && inDomain(owner, d))
      .sort((a, b) => b.name.length - a.name.length)[0];

  /** The domain responsible for an owner name (cached per owner, or once with "domain"). */
  function domainFor(owner: string): Promise<Domain> {
    const key = fixedDomain ?? owner;
    let p = domains.get(key);
    if (!p) {
      p = lookUpDomain(owner);
      domains.set(key, p);
      p.catch(() => domains.delete(key));
    }
    return p;
  }

  /** Several owners without the option "domain": the account's domains are read once
   *  (`GET /domains/`) instead of one `?owns_qname=` per owner (an owner no domain contains is
   *  left to domainFor, which says so). */
  let allDomains: Promise<unknown[]> | undefined;
  async function learnDomains(owners: string[]): Promise<void> {
    if (fixedDomain || new Set(owners).size < 2 || owners.every((o) => domains.has(o))) return;
    allDomains ??= getList('/domains/', 'listing the domains of the account');
    allDomains.catch(() => {
      allDomains = undefined;
    });
    const all = await allDomains;
    for (const o of owners) {
      const best = domains.has(o) ? undefined : longest(all, o);
      if (best) domains.set(o, Promise.resolve(best));
    }
  }

  function subnameOf(owner: string, d: Domain): string {
    if (owner === `${d.name}.`) return '';
    if (!inDomain(owner, d)) throw fail(`${owner} is not in domain ${d.name} (option "domain")`);
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
    const base = `/domains/${encodeURIComponent(d.name)}/rrsets/`;
    const path =
      one !== undefined
        ? `${base}?subname=${encodeURIComponent(one)}`
        : // `cursor=` (empty) is deSEC's own `first` page link: no 400 "Pagination required" first.
          `${base}?${tlsaOnly ? 'type=TLSA&' : ''}cursor=`;
    const what =
      one !== undefined
        ? `reading ${one || '@'} in ${d.name}`
        : `reading ${tlsaOnly ? 'the TLSA RRsets of ' : ''}${d.name}`;
    const list = await getList(
      path,
      what,
      `domain (zone) ${d.name} not found in this deSEC account`,
    );
    const out = new Map<string, NameState>();
    for (const r of list as RRset[]) {
      if (typeof r?.subname !== 'string' || !subnames.has(r.subname)) continue;
      const state = out.get(r.subname) ?? {};
      out.set(r.subname, state);
      if (r.type === 'TLSA' || r.type === 'TXT') {
        state[r.type === 'TLSA' ? 'tlsa' : 'txt'] = {
          subname: r.subname,
          type: r.type,
          ttl: r.ttl,
          records: Array.isArray(r.records) ? r.records.filter((x) => typeof x === 'string') : [],
          ...(typeof r.touched === 'string' ? { touched: r.touched } : {}),
        };
      } else if (r.type === 'CNAME') state.cname = r.records?.[0] ?? '?';
    }
    return out;
  }

  return { apiBase, exchange, domainFor, learnDomains, subnameOf, readNames };
}
