/** The DNS side of the rfc2136 provider (rfc2136.ts has the provider's whole story): signed
 *  exchanges with the server (TSIG checked, SERVFAIL and silence retried), finding the zone of
 *  an owner name, and one UPDATE with the server's answer mapped to a clear error. */
import {
  DnsTransportError,
  type Endpoint,
  exchange,
  nameAt,
  type Reply,
  recordsOf,
} from '../src/dns/transport.js';
import { type TsigKey, tsigErrorName } from '../src/dns/tsig.js';
import {
  buildQuery,
  buildTlsaUpdateMany,
  buildTxtUpdate,
  type TxtUpdate,
} from '../src/dns/update.js';
import { CLASS, OPCODE, rcodeName, readRrsig, TYPE } from '../src/dns/wire.js';
import type { TlsaRecord } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { ProviderError } from './contract.js';

const retryable = new WeakSet<Error>();

export function rfc2136Dns(cfg: {
  name: string;
  server: string;
  port: number;
  timeoutS: number;
  key: TsigKey;
  zoneFixed: string | undefined;
}) {
  const { name, server, port, timeoutS, key, zoneFixed } = cfg;
  const keyName = key.name;
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

  /** The zone of `owner` when it is known without a query: the option, or found before. */
  function knownZone(owner: string): string | undefined {
    if (zoneFixed) {
      if (owner !== zoneFixed && !owner.endsWith(`.${zoneFixed}`))
        throw fail(`${owner} is not in zone ${zoneFixed} (option "zone")`);
      return zoneFixed;
    }
    return zones.get(owner);
  }

  /** The apex that an authoritative answer about `owner` itself names (its SOA in the answer
   *  or authority section, one that contains the owner), remembered as the owner's zone. */
  function zoneFromAnswer(owner: string, reply: Reply): string | undefined {
    const soa = recordsOf(reply).find((s) => s.type === TYPE.SOA && s.section !== 3);
    const apex = soa && nameAt(reply, soa.start);
    if (!apex || (owner !== apex && !owner.endsWith(`.${apex}`))) return undefined;
    zones.set(owner, apex);
    return apex;
  }

  /** The zone that signed the owner's TLSA RRset, remembered as the owner's zone: the Signer's
   *  Name of an RRSIG covering TLSA at the owner itself, in the answer section of an answer whose
   *  TSIG checked out, is the zone that holds the RRset (RFC 4034 §3.1.7), a child zone
   *  delegated below the owner's parent included. Undefined for an unsigned zone. */
  function zoneFromSignature(owner: string, reply: Reply): string | undefined {
    if (!reply.tsig?.ok || !reply.header.aa || reply.header.rcode !== 0) return undefined;
    for (const s of recordsOf(reply)) {
      if (s.section !== 1 || s.type !== TYPE.RRSIG || s.class !== CLASS.IN) continue;
      if (nameAt(reply, s.start) !== owner) continue;
      const { typeCovered, signer } = readRrsig(reply.message, s);
      if (typeCovered !== TYPE.TLSA) continue;
      if (owner !== signer && !owner.endsWith(`.${signer}`)) continue;
      zones.set(owner, signer);
      return signer;
    }
    return undefined;
  }

  /** The zone an authoritative answer to the read of the owner's TLSA records names, remembered
   *  so that a write after the read needs no SOA query: records in a signed zone name it by their
   *  RRSIG's signer; no record and no CNAME at the owner, by the SOA beside the answer (RFC 2308).
   *  Records in an unsigned zone name none (a write then asks SOA). */
  function zoneFromRead(owner: string, reply: Reply): string | undefined {
    const signed = zoneFromSignature(owner, reply);
    if (signed) return signed;
    const { rcode, counts } = reply.header;
    return rcode === 3 || counts[1] === 0 ? zoneFromAnswer(owner, reply) : undefined;
  }

  async function findZone(owner: string): Promise<string> {
    const known = knownZone(owner);
    if (known) return known;
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
        const apex = zoneFromAnswer(owner, reply);
        if (apex) return apex;
      }
    }
    throw fail(
      `${where} serves no zone that contains ${owner} (SOA queries: ${answers.join(', ')}); check "server", or set "zone"`,
    );
  }

  /** One signed UPDATE for these owners of one zone, with the server's answer mapped to a
   *  clear error. */
  async function update(zone: string, items: UpdateItem[]): Promise<void> {
    for (const i of items) checkTtl(i.ttl);
    const count = items.reduce((n, i) => n + i.add.length + i.remove.length, 0);
    await send(
      zone,
      items.map((i) => i.owner),
      'TLSA',
      count,
      (id) => buildTlsaUpdateMany(id, zone, items),
    );
  }

  /** One signed UPDATE of TXT values at one owner (ACME DNS-01). */
  async function updateTxt(zone: string, u: TxtUpdate): Promise<void> {
    checkTtl(u.ttl);
    await send(zone, [u.owner], 'TXT', u.add.length + u.remove.length, (id) =>
      buildTxtUpdate(id, zone, u),
    );
  }

  function checkTtl(ttl: number): void {
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff)
      throw fail(`TTL ${ttl} is not a DNS TTL`);
  }

  async function send(
    zone: string,
    owners: string[],
    rrType: 'TLSA' | 'TXT',
    count: number,
    buildMessage: (id: number) => Buffer,
  ): Promise<void> {
    const o = owners.length === 1 ? owners[0]! : `${owners.length} names`;
    const what = `updating ${rrType} at ${o} in zone ${zone}`;
    const build = (id: number): Buffer => {
      const m = buildMessage(id);
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
          `${o} has a CNAME (${where} answered ${rcodeName(rcode)} to the prerequisite "no CNAME"); ${rrType} records cannot sit beside it, and tlsa does not overwrite it: ${rrType === 'TLSA' ? "move the TLSA records to the CNAME's target or remove the CNAME" : 'remove the CNAME, or point the provider at the zone of its target'}`,
        );
      case 5:
        throw fail(
          `${what}: ${where} answered REFUSED: the server refuses updates for this zone from this key (check its ACL / update-policy for key "${keyName}" and type ${rrType})`,
        );
      case 9:
        for (const i of owners) zones.delete(i);
        throw fail(
          `${what}: ${where} answered NOTAUTH: it is not authoritative (primary) for zone ${zone}; check "server" and "zone"`,
        );
      case 10:
        for (const i of owners) zones.delete(i);
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

  return { where, fail, ask, knownZone, zoneFromRead, findZone, update, updateTxt };
}

export interface UpdateItem {
  owner: string;
  add: TlsaRecord[];
  remove: TlsaRecord[];
  ttl: number;
}

/** Split so that no message carries more than `maxRrs` resource records (~60 bytes each:
 *  800 stay well inside the 65,535-byte limit of a DNS message over TCP). */
export function chunks(items: UpdateItem[], maxRrs: number): UpdateItem[][] {
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
