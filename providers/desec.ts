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
 *              against the write limits. The TTL is the requested one when records are added
 *              (also when they are all there already: a changed TTL is written), else the
 *              RRset's own. An owner's adds and removes go in one write of its whole
 *              RRset; a record named in both is kept (add wins).
 * TTL:         deSEC refuses TTLs below the domain's `minimum_ttl` (3600 for most domains).
 *              `effectiveTtl(owner, ttl)` answers the TTL that will really be published and why:
 *              tlsa writes with it, its waits count from it, and `plan` shows the reason on the
 *              owner's TTL line (`--json`: `ttlWhy`). A caller that applies a lower TTL without
 *              asking gets it raised all the same, said by a warning on stderr (once per domain
 *              and TTL) and in the provider's `notices`.
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
 * TXT:         for ACME DNS-01, the same RRset write on the TXT RRset: desec-txt.ts.
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
import { normaliseName } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import {
  type DnsProvider,
  ProviderError,
  type ProviderFactory,
  type PublishedTtl,
} from './contract.js';
import {
  ATTEMPTS,
  type Domain,
  desecApi,
  HttpFailure,
  messagesOf,
  type NameState,
} from './desec-api.js';
import { cnameError, listByZone, type OwnerWant, parseRecords, writesByZone } from './kit.js';
import { type SetWrite, verifiedWrites } from './kit-rrset.js';
import { readOptions } from './options.js';
import { DESEC_OPTIONS } from './desec-options.js';
import { desecTxt } from './desec-txt.js';

/** The desec provider also says which TTL it really publishes. */
export interface DesecProvider extends DnsProvider {
  /** Messages about changes the API forced (a raised TTL), newest last. */
  readonly notices: string[];
  /** The TTL that apply(owner, …, ttl) will publish: ttl, or the domain's minimum_ttl and why. */
  effectiveTtl(owner: string, ttl: number): Promise<number | PublishedTtl>;
}

const warned = new Set<string>();

/** The TTL deSEC publishes for `ttl` in domain `d`, with why when it is raised (the plan's TTL
 *  line; the wait lines quote the cause). */
function minimumTtl(d: Domain, ttl: number): number | PublishedTtl {
  if (ttl >= d.minimumTtl) return ttl;
  const cause = `deSEC's minimum TTL for ${d.name} (its minimum_ttl) is ${d.minimumTtl}`;
  return {
    ttl: d.minimumTtl,
    why: `raised from ${ttl}: ${cause}, deSEC refuses lower ones; set the service's ttl to at least ${d.minimumTtl}`,
    cause,
  };
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(DESEC_OPTIONS, options, ctx);
  const token = opt.token;
  const rawUrl = opt.api_url;
  let apiUrl: URL;
  try {
    apiUrl = new URL(rawUrl.replace(/\/+$/, ''));
    if (apiUrl.protocol !== 'https:' && apiUrl.protocol !== 'http:') throw new Error('scheme');
  } catch {
    throw ctx.optionError(
      'api_url',
      `"api_url" must be an http(s) URL such as https://desec.io/api/v1 (got "${rawUrl}")`,
    );
  }
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

  const api = desecApi({ api: apiUrl, token, timeoutMs, maxWaitS, fixedDomain, fail });

  /** Write these whole TLSA RRsets in ONE bulk PATCH (atomic; counted once against the write
   *  limits); returns each written RRset's `touched` stamp by subname (none if deleted). */
  async function write(d: Domain, writes: SetWrite[]): Promise<Map<string, string | undefined>> {
    const sub = (w: SetWrite) => api.subnameOf(w.want.owner, d);
    const items = writes.map((w) => ({
      subname: sub(w),
      type: 'TLSA',
      records: w.records.map((r) => r.content),
      ...(w.records.length ? { ttl: w.ttl } : {}),
    }));
    const first = writes[0]!.want;
    const what =
      writes.length === 1
        ? `writing ${first.owner} TLSA`
        : `writing TLSA at ${writes.length} names in ${d.name}`;
    try {
      const url = `${api.apiBase}/domains/${encodeURIComponent(d.name)}/rrsets/`;
      const a = await api.exchange('PATCH', url, what, items, [], true);
      const answer = Array.isArray(a.body)
        ? (a.body as Array<{ type?: string; subname?: string; touched?: unknown }>)
        : [];
      return new Map(
        writes.map((w) => {
          const written = answer.find((r) => r?.type === 'TLSA' && r.subname === sub(w));
          return [sub(w), typeof written?.touched === 'string' ? written.touched : undefined];
        }),
      );
    } catch (e) {
      if (!(e instanceof HttpFailure)) throw e;
      throw writeError(d, writes, e);
    }
  }

  function writeError(d: Domain, writes: SetWrite[], e: HttpFailure): Error {
    const first = writes[0]!.want;
    if (e.status === 404) return fail(`domain (zone) ${d.name} not found in this deSEC account`);
    if (e.status === 403) {
      const subs = writes.map((w) => api.subnameOf(w.want.owner, d));
      if (subs.length === 1)
        return fail(
          `the token may not write TLSA at "${subs[0]}" in domain ${d.name} (HTTP 403: ${e.message}); give it a scoping policy {"domain": "${d.name}", "subname": "${subs[0]}", "type": "TLSA", "perm_write": true}`,
        );
      const shown =
        subs
          .slice(0, 10)
          .map((s) => `"${s}"`)
          .join(', ') + (subs.length > 10 ? `, … (${subs.length} in all)` : '');
      return fail(
        `the token may not write TLSA at one or more of ${shown} in domain ${d.name} (HTTP 403: ${e.message}); give it a scoping policy {"domain": "${d.name}", "subname": SUBNAME, "type": "TLSA", "perm_write": true} for each`,
      );
    }
    // Bulk errors are a list with one object per item (`{}` when fine): name the owners.
    const itemErrors =
      Array.isArray(e.body) && e.body.length === writes.length ? e.body : undefined;
    const perItem = itemErrors
      ? writes
          .map((w, i) => ({ owner: w.want.owner, messages: messagesOf(itemErrors[i]) }))
          .filter((x) => x.messages.length)
      : [];
    const where = `deSEC domain ${d.name}`;
    const cname = perItem.find((x) => x.messages.some((m) => /alongside CNAME/i.test(m)));
    if (cname) return cnameError(name, [{ owner: cname.owner }], where);
    if (writes.length === 1 && e.messages.some((m) => /alongside CNAME/i.test(m)))
      return cnameError(name, [{ owner: first.owner }], where);
    if (writes.length === 1 || !perItem.length)
      return fail(
        `deSEC rejected the TLSA RRset${writes.length === 1 ? ` at ${first.owner}` : `s of ${writes.length} names in ${d.name}`} (HTTP ${e.status}): ${e.message}`,
      );
    return fail(
      `deSEC rejected TLSA RRsets in ${d.name} (HTTP ${e.status}): ${perItem.map((x) => `${x.owner}: ${x.messages.join('; ')}`).join('; ')}`,
    );
  }

  /** The TTL deSEC accepts: raised to the domain minimum, and said so (once per TTL). */
  function ttlFor(owner: string, d: Domain, ttl: number): number {
    if (ttl >= d.minimumTtl) return ttl;
    const msg = `${owner}: TTL ${ttl} is below deSEC's minimum TTL ${d.minimumTtl} for ${d.name}; publishing with TTL ${d.minimumTtl}. Set the service's ttl to at least ${d.minimumTtl}`;
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

  /** Read-modify-write of several owners of one domain (kit-rrset.ts verifiedWrites): one
   *  read, one bulk PATCH, one read-back; while an RRset's `touched` stamp shows writes after
   *  ours, another writer may not have written yet, so the read-back looks again. */
  async function applyDomain(d: Domain, wants: OwnerWant[]): Promise<void> {
    const sub = (w: OwnerWant) => api.subnameOf(w.owner, d);
    for (const w of wants) if (w.add.length) w.ttl = ttlFor(w.owner, d, w.ttl);
    await verifiedWrites<Map<string, NameState>>(wants, {
      async read(owners) {
        const state = await api.readNames(d, new Set(owners.map(sub)));
        const found = owners.flatMap((w) => {
          const target = state.get(sub(w))?.cname;
          return target === undefined ? [] : [{ owner: w.owner, target }];
        });
        if (found.length)
          throw cnameError(
            name,
            found,
            `deSEC domain ${d.name}`,
            owners.length > 1 ? 'nothing was written' : undefined,
          );
        return state;
      },
      rrset(state, w) {
        const set = state.get(sub(w))?.tlsa;
        return set && { ttl: set.ttl, records: set.records.map((content) => ({ content })) };
      },
      async write(writes) {
        const touched = await write(d, writes);
        return (after) => {
          let quiet = true;
          for (const [s, stamp] of touched) {
            const now = after.get(s)?.tlsa?.touched;
            if (now !== stamp) quiet = false;
            touched.set(s, now);
          }
          return quiet;
        };
      },
      settleMs,
      attempts: ATTEMPTS,
      fail,
      where: `in deSEC domain ${d.name}`,
    });
  }

  const provider: DesecProvider = {
    name,
    notices,
    async effectiveTtl(ownerIn, ttl) {
      const d = await api.domainFor(normaliseName(ownerIn));
      return minimumTtl(d, ttl);
    },
    async list(ownerIn) {
      const owner = normaliseName(ownerIn);
      const d = await api.domainFor(owner);
      const sub = api.subnameOf(owner, d);
      return parseRecords(
        owner,
        (await api.readNames(d, new Set([sub]))).get(sub)?.tlsa?.records ?? [],
      );
    },
    async listMany(ownersIn) {
      await api.learnDomains([...new Set(ownersIn.map((o) => normaliseName(o)))]);
      return listByZone(
        ownersIn,
        api.domainFor,
        (d) => d.name,
        async (d, items) => {
          const subs = new Map(items.map((o) => [o, api.subnameOf(o, d)]));
          const state = await api.readNames(d, new Set(subs.values()), true);
          return new Map(
            [...subs].map(([o, s]) => [o, parseRecords(o, state.get(s)?.tlsa?.records ?? [])]),
          );
        },
      );
    },
    ...writesByZone(
      name,
      api.domainFor,
      (d) => d.name,
      applyDomain,
      async (wants) => api.learnDomains(wants.map((w) => w.owner)),
    ),
    txt: desecTxt(api, { name, settleMs, attempts: ATTEMPTS, fail }),
  };
  return provider;
};
