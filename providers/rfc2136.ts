/**
 * rfc2136: dynamic DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945), for self-hosted servers
 * that sign the zone themselves. Tested against Knot 3.2 and BIND 9.18 (test/integration);
 * PowerDNS should take it with `dnsupdate=yes` and TSIG-ALLOW-DNSUPDATE metadata (not tested
 * here). Windows DNS knows only GSS-TSIG for secure updates, not TSIG: not supported.
 *
 * Credentials: a TSIG key. tsig_name (the key's name on the server), tsig_algorithm
 *              (hmac-sha256, the default, or hmac-sha512) and tsig_secret (base64), written as
 *              `tsig_secret_file: /etc/tlsa/update.key` (chmod 600) or `tsig_secret: ${ENV}`.
 *              The file may hold just the base64 secret, or the key block `tsig-keygen` (BIND)
 *              or `keymgr -t` (Knot) prints; name and algorithm are then taken from it.
 * Options:     server (host or IP, default 127.0.0.1: the primary, not a secondary), port (53),
 *              zone (optional, see below), timeout_s (per exchange, default 5).
 * Privileges:  updates of TLSA at the names tlsa manages, nothing else. Knot:
 *                acl: [{ id: tlsa, key: tlsa-update, action: update, update-type: [TLSA] }]
 *                (to limit the names too: `update-owner: name`, `update-owner-match:
 *                sub-or-equal`, `update-owner-name: [mx.example.org]`). A Knot key outside its
 *                acl is answered NOTAUTH/BADKEY, like an unknown key. BIND:
 *                update-policy { grant tlsa-update zonesub TLSA; };   (whole zone) or
 *                update-policy { grant tlsa-update subdomain mx.example.org. TLSA; };
 *              (outside the grant BIND answers REFUSED). The CNAME prerequisite needs no grant.
 *              The key also signs the provider's SOA and TLSA queries (servers accept any known
 *              key on queries). Neither server needs the key for anything else.
 * Zone:        `zone` when given; otherwise a signed SOA query for the owner name: the SOA in the
 *              answer or authority section names the zone, and on REFUSED or a referral the
 *              query walks up one label at a time.
 * Writes:      ONE UPDATE per apply(): prerequisite "CNAME RRset does not exist" at the owner
 *              (a CNAME is reported, never overwritten; without the prerequisite Knot and BIND
 *              answer NOERROR and silently drop a TLSA add beside a CNAME), then single-RR
 *              deletes (class NONE, exact RDATA) and single-RR adds, which the server applies
 *              all or nothing (RFC 2136 §3.4.2), so there is no moment with the deletes done
 *              and the adds not; a record named in both is kept (left out of the deletes);
 *              a delete-only change leaves the RRset's TTL as it is. Never an RRset delete:
 *              two writers on one name never lose each other's records, and records tlsa did
 *              not name stay. Deleting an absent record and adding a present one are no-ops
 *              for the server, so a retry is safe.
 * Transport:   UDP; TCP when the request is over 512 bytes (about 8 records) or the answer is
 *              truncated. Every answer's TSIG is verified against the request.
 * Errors:      SERVFAIL and timeouts are retried (4 tries, backoff with jitter); NOTAUTH with
 *              BADSIG/BADKEY, REFUSED, NOTZONE, NOTAUTH and YXRRSET (the CNAME) fail at once.
 * Limits:      no API throttling in the protocol; a message holds at most 64 KiB (over 1,000
 *              TLSA records); the server serialises concurrent updates to one zone.
 */
import { registerSecret, redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { normaliseName, type TlsaRecord } from '../src/tlsa/record.js';
import {
  decodeSecret,
  tsigErrorName,
  TSIG_ALGORITHMS,
  type TsigAlgorithm,
  type TsigKey,
} from '../src/dns/tsig.js';
import { DnsTransportError, exchange, type Endpoint, type Reply } from '../src/dns/transport.js';
import { buildQuery, buildTlsaUpdateMany, parseTlsaRdata } from '../src/dns/update.js';
import { OPCODE, TYPE, rcodeName, readName, walkRecords } from '../src/dns/wire.js';
import { readOptions } from './options.js';
import { RFC2136_OPTIONS } from './rfc2136-options.js';
import {
  checkChangeOwners,
  effectiveChange,
  ProviderError,
  type DnsProvider,
  type ProviderFactory,
  type TlsaChange,
} from './index.js';

/** The secret, and name and algorithm if the text is a BIND or Knot key block. */
export function parseKeyText(text: string): { secret: string; name?: string; algorithm?: string } {
  const t = text.trim();
  const bind = /\bsecret\s+"([^"]+)"\s*;/.exec(t);
  if (bind) {
    const name = /\bkey\s+"?([^"\s{]+)"?\s*\{/.exec(t)?.[1];
    const algorithm = /\balgorithm\s+"?([A-Za-z0-9-]+)"?\s*;/.exec(t)?.[1];
    return { secret: bind[1]!, ...(name ? { name } : {}), ...(algorithm ? { algorithm } : {}) };
  }
  const knot = /\bsecret:\s*"?([A-Za-z0-9+/=]+)"?/.exec(t);
  if (knot) {
    const name = /\bid:\s*"?([^"\s]+)"?/.exec(t)?.[1];
    const algorithm = /\balgorithm:\s*"?([A-Za-z0-9-]+)"?/.exec(t)?.[1];
    return { secret: knot[1]!, ...(name ? { name } : {}), ...(algorithm ? { algorithm } : {}) };
  }
  return { secret: t };
}

/** Errors worth another try: SERVFAIL and no answer. */
const retryable = new WeakSet<Error>();

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(RFC2136_OPTIONS, options, ctx);
  const { server, port } = opt;
  const timeoutS = opt.timeout_s;
  const zoneOpt = opt.zone;
  let zoneFixed: string | undefined;
  try {
    zoneFixed = zoneOpt ? normaliseName(zoneOpt) : undefined;
  } catch (e) {
    throw ctx.optionError('zone', (e as Error).message);
  }

  const secretText = opt.tsig_secret;
  const fromText = parseKeyText(secretText);
  registerSecret(fromText.secret);
  const secret = decodeSecret(fromText.secret);
  if (!secret)
    throw ctx.optionError(
      'tsig_secret',
      'the TSIG secret is not base64 (as tsig-keygen or keymgr -t print it)',
    );
  const nameText = opt.tsig_name ?? fromText.name;
  if (!nameText)
    throw ctx.optionError(
      'tsig_name',
      'rfc2136 needs "tsig_name": the name of the TSIG key on the server',
    );
  let keyName: string;
  try {
    keyName = normaliseName(nameText);
  } catch (e) {
    throw ctx.optionError('tsig_name', (e as Error).message);
  }
  const algText = (opt.tsig_algorithm ?? fromText.algorithm ?? 'hmac-sha256')
    .toLowerCase()
    .replace(/\.$/, '');
  if (!TSIG_ALGORITHMS.includes(algText as TsigAlgorithm))
    throw ctx.optionError(
      'tsig_algorithm',
      `"tsig_algorithm" must be one of ${TSIG_ALGORITHMS.join(', ')} (got "${algText}")`,
    );
  const key: TsigKey = { name: keyName, algorithm: algText as TsigAlgorithm, secret };

  const name = `rfc2136(${ctx.instance})`;
  const where = `${server} port ${port}`;
  const ep: Endpoint = { host: server, port, timeoutMs: timeoutS * 1000 };
  const zones = new Map<string, string>();

  const fail = (
    message: string,
    opts: { retry?: boolean; cause?: unknown } = {},
  ): ProviderError => {
    const e = new ProviderError(
      name,
      redact(message),
      opts.cause ? { cause: opts.cause } : undefined,
    );
    if (opts.retry) retryable.add(e);
    return e;
  };

  /** `scope`: "zone Z", or what the zone is being looked up for. */
  const keyRejected = (scope: string, answer: string, why: string): ProviderError =>
    fail(
      `TSIG key rejected (wrong name, algorithm or secret): ${where} (${scope}) answered ${answer} to key "${keyName}" (${key.algorithm})${why}`,
    );

  /** One signed exchange, retried on SERVFAIL and on no answer; the answer's TSIG checked. */
  async function ask(what: string, scope: string, build: (id: number) => Buffer): Promise<Reply> {
    return withRetry(
      async () => {
        let reply: Reply;
        try {
          reply = await exchange(ep, build, key);
        } catch (e) {
          if (e instanceof ProviderError) throw e;
          if (e instanceof DnsTransportError)
            throw fail(`${what}: ${e.message}`, { retry: true, cause: e });
          throw fail(`${what}: ${(e as Error).message}`, { cause: e });
        }
        const rcode = reply.header.rcode;
        const v = reply.tsig!;
        if (!v.ok && v.reason === 'error') {
          const code = v.tsig!.error;
          const why =
            code === 16
              ? ': the secret does not match'
              : code === 17
                ? ': the server has no key of this name and algorithm, or (Knot) its acl does not let this key update TLSA here'
                : code === 18
                  ? ': the clocks of this host and the server differ by more than the 300 s fudge'
                  : '';
          throw keyRejected(scope, `${rcodeName(rcode)} (${tsigErrorName(code)})`, why);
        }
        if (rcode === 2)
          throw fail(`${what}: ${where} answered SERVFAIL (${scope})`, { retry: true });
        if (!v.ok && rcode === 0) {
          throw fail(
            `${what}: the answer from ${where} is not signed with key "${keyName}" (${v.reason}); not trusted`,
          );
        }
        return reply;
      },
      {
        attempts: 4,
        baseDelayMs: 250,
        maxDelayMs: 2_000,
        isRetryable: (e) => e instanceof Error && retryable.has(e),
      },
    );
  }

  async function findZone(owner: string): Promise<string> {
    if (zoneFixed) {
      if (owner !== zoneFixed && !owner.endsWith(`.${zoneFixed}`))
        throw fail(`${owner} is not in zone ${zoneFixed} (option "zone")`);
      return zoneFixed;
    }
    const cached = zones.get(owner);
    if (cached) return cached;
    const answers: string[] = [];
    for (let n = owner; n !== '.'; n = n.slice(n.indexOf('.') + 1) || '.') {
      const reply = await ask(
        `finding the zone of ${owner}`,
        `zone of ${owner} not known yet`,
        (id) => buildQuery(id, n, TYPE.SOA),
      );
      const { rcode, aa } = reply.header;
      answers.push(`${n} ${rcodeName(rcode)}${aa ? '' : ' (not authoritative)'}`);
      if (aa && (rcode === 0 || rcode === 3)) {
        const soa = walkRecords(reply.message).find((s) => s.type === TYPE.SOA && s.section !== 3);
        const apex = soa && readName(reply.message, soa.start);
        if (apex && (owner === apex || owner.endsWith(`.${apex}`))) {
          zones.set(owner, apex);
          return apex;
        }
      }
    }
    throw fail(
      `${where} serves no zone that contains ${owner} (SOA queries: ${answers.join(', ')}); check "server", or set "zone"`,
    );
  }

  const checkOwners = (owner: string, change: TlsaChange): void =>
    checkChangeOwners(name, owner, change);

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      const zone = await findZone(o);
      const reply = await ask(`reading TLSA at ${o}`, `zone ${zone}`, (id) =>
        buildQuery(id, o, TYPE.TLSA, 1232),
      );
      const { rcode, aa } = reply.header;
      if (rcode === 3) return [];
      if (rcode !== 0 || !aa) {
        throw fail(
          `reading TLSA at ${o}: ${where} answered ${rcodeName(rcode)}${aa ? '' : ' without authority'}: it does not serve zone ${zone}`,
        );
      }
      const out: TlsaRecord[] = [];
      for (const s of walkRecords(reply.message)) {
        if (s.section !== 1 || s.type !== TYPE.TLSA || readName(reply.message, s.start) !== o)
          continue;
        out.push(parseTlsaRdata(o, reply.message.subarray(s.rdataAt, s.end)));
      }
      return out;
    },
    async apply(owner, change, ttl) {
      const o = normaliseName(owner);
      checkOwners(o, change);
      const { add, remove } = effectiveChange(change);
      if (add.length === 0 && remove.length === 0) return;
      await update(await findZone(o), [{ owner: o, add, remove, ttl }]);
    },
    async listMany(owners) {
      const out = new Map<string, TlsaRecord[]>();
      // Queries are cheap and independent: a few at a time, not one UPDATE-sized transfer.
      const queue = [...owners];
      await Promise.all(
        Array.from({ length: Math.min(16, queue.length) }, async () => {
          for (let o = queue.shift(); o !== undefined; o = queue.shift())
            out.set(normaliseName(o), await provider.list(o));
        }),
      );
      return out;
    },
    async applyMany(changes, ttlOf) {
      // One item per owner (its changes merged), so that an owner's adds and removes always
      // travel in one message, whatever the split below.
      const merged = new Map<string, UpdateItem>();
      for (const c of changes) {
        const o = normaliseName(c.owner);
        checkOwners(o, c);
        const m = merged.get(o);
        if (m) {
          m.add.push(...c.add);
          m.remove.push(...c.remove);
        } else
          merged.set(o, { owner: o, add: [...c.add], remove: [...c.remove], ttl: ttlOf(c.owner) });
      }
      const byZone = new Map<string, UpdateItem[]>();
      for (const m of merged.values()) {
        const { add, remove } = effectiveChange(m);
        if (!add.length && !remove.length) continue;
        const zone = await findZone(m.owner);
        byZone.set(zone, [...(byZone.get(zone) ?? []), { ...m, add, remove }]);
      }
      for (const [zone, items] of byZone) {
        // One UPDATE per zone, split only where a DNS message would overflow.
        for (const chunk of chunks(items, 800)) {
          try {
            await update(zone, chunk);
          } catch (e) {
            // A CNAME prerequisite names no owner: redo one by one to say which.
            if (chunk.length > 1 && /has a CNAME/.test((e as Error).message)) {
              for (const item of chunk) await update(zone, [item]);
            } else throw e;
          }
        }
      }
    },
  };
  /** One signed UPDATE for these owners of one zone, with the server's answer mapped to a
   *  clear error. */
  async function update(zone: string, items: UpdateItem[]): Promise<void> {
    for (const i of items) {
      if (!Number.isInteger(i.ttl) || i.ttl < 0 || i.ttl > 0x7fffffff)
        throw fail(`TTL ${i.ttl} is not a DNS TTL`);
    }
    const o = items.length === 1 ? items[0]!.owner : `${items.length} names`;
    const what = `updating TLSA at ${o} in zone ${zone}`;
    const count = items.reduce((n, i) => n + i.add.length + i.remove.length, 0);
    const build = (id: number): Buffer => {
      const m = buildTlsaUpdateMany(id, zone, items);
      if (m.length > 65_000) throw fail(`${what}: ${count} records do not fit in one DNS message`);
      return m;
    };
    const reply = await ask(what, `zone ${zone}`, build);
    const { rcode, opcode } = reply.header;
    if (opcode !== OPCODE.UPDATE)
      throw fail(`${what}: ${where} answered with opcode ${opcode}, not UPDATE`);
    switch (rcode) {
      case 0:
        return;
      case 7: // YXRRSET: "CNAME RRset does not exist" failed
      case 8: // NXRRSET: a server reading the prerequisite the other way round
        throw fail(
          `${o} has a CNAME (${where} answered ${rcodeName(rcode)} to the prerequisite "no CNAME"); TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME`,
        );
      case 5:
        throw fail(
          `${what}: ${where} answered REFUSED: the server refuses updates for this zone from this key (check its ACL / update-policy for key "${keyName}" and type TLSA)`,
        );
      case 9:
        for (const i of items) zones.delete(i.owner);
        throw fail(
          `${what}: ${where} answered NOTAUTH: it is not authoritative (primary) for zone ${zone}; check "server" and "zone"`,
        );
      case 10:
        for (const i of items) zones.delete(i.owner);
        throw fail(
          `${what}: ${where} answered NOTZONE: ${o} is not in zone ${zone} as the server has it (a delegated subzone?); set "zone"`,
        );
      case 1:
      case 4:
        throw fail(
          `${what}: ${where} answered ${rcodeName(rcode)}: it does not take this UPDATE (is dynamic update enabled for zone ${zone}?)`,
        );
      default:
        throw fail(`${what}: ${where} answered ${rcodeName(rcode)}`);
    }
  }

  return provider;
};

interface UpdateItem {
  owner: string;
  add: TlsaRecord[];
  remove: TlsaRecord[];
  ttl: number;
}

/** Split so that no message carries more than `maxRrs` resource records (~60 bytes each:
 *  800 stay well inside the 65,535-byte limit of a DNS message over TCP). */
function chunks(items: UpdateItem[], maxRrs: number): UpdateItem[][] {
  const out: UpdateItem[][] = [];
  let cur: UpdateItem[] = [];
  let n = 0;
  for (const i of items) {
    const size = 1 + i.add.length + i.remove.length;
    if (cur.length && n + size > maxRrs) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(i);
    n += size;
  }
  if (cur.length) out.push(cur);
  return out;
}
