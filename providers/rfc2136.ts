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
 * Zone:        `zone` when given (a read whose answer names another zone, a child delegated
 *              below it say, fails: the server would take an UPDATE of the option's zone and
 *              keep the records below the cut); otherwise a signed SOA query for the owner
 *              name: the SOA in the answer or authority section names the zone, and on
 *              REFUSED or a referral the query walks up one label at a time. Found when a write
 *              needs it; a read asks for the TLSA records at once (EDNS DO set) and looks for the
 *              zone only when the answer is not an authoritative NOERROR or NXDOMAIN (one query
 *              per owner in the common case). The read's answer names the zone for a later
 *              write without an SOA query:
 *              in a signed zone (DANE needs one) by the Signer's Name of the RRSIG over the
 *              owner's TLSA RRset, which is the zone holding it (RFC 4034 §3.1.7), a child zone
 *              below the owner's parent included; an empty answer (no record, no CNAME) by the
 *              SOA in it (RFC 2308). Records in an unsigned zone name no zone: SOA for a write.
 * Writes:      ONE UPDATE per apply(): prerequisite "CNAME RRset does not exist" at the owner
 *              (a CNAME is reported, never overwritten; without the prerequisite Knot and BIND
 *              answer NOERROR and silently drop a TLSA add beside a CNAME), then single-RR
 *              deletes (class NONE, exact RDATA) and single-RR adds, which the server applies
 *              all or nothing (RFC 2136 §3.4.2), so there is no moment with the deletes done
 *              and the adds not; a record named in both is kept (left out of the deletes);
 *              a delete-only change leaves the RRset's TTL as it is. Each added record is
 *              deleted and added in the same message, so that an add of a record already
 *              there with another TTL sets the RRset's TTL (Knot ignores a plain duplicate add;
 *              BIND and Knot give the RRset the TTL of an added record). Never an RRset delete:
 *              two writers on one name never lose each other's records, and records tlsa did
 *              not name stay. Deleting an absent record and adding a present one are no-ops
 *              for the server, so a retry is safe.
 * Transport:   UDP; TCP when the request is over 512 bytes (about 8 records) or the answer is
 *              truncated (a read of many records with their RRSIG over 1,232 bytes). Every
 *              answer's TSIG is verified against the request.
 * Errors:      SERVFAIL and timeouts are retried (4 tries, backoff with jitter); NOTAUTH with
 *              BADSIG/BADKEY, REFUSED, NOTZONE, NOTAUTH and YXRRSET (the CNAME) fail at once.
 * TXT:         (ACME DNS-01) the same UPDATE for TXT values at _acme-challenge names: single-RR
 *              adds and deletes under the "no CNAME" prerequisite. The key then also needs
 *              TXT: Knot `update-type: [TLSA, TXT]`, BIND `grant KEY zonesub TLSA TXT;`.
 * Limits:      no API throttling in the protocol (listMany keeps 16 TLSA queries in flight with
 *              the server, over one UDP socket, answers matched by id; applyMany updates up to 4
 *              zones at a time, each zone's UPDATEs one after another); a message holds at most
 *              64 KiB (over 1,000 TLSA records); the server serialises concurrent updates to one
 *              zone.
 */
import { nameAt, recordsOf } from '../src/dns/transport.js';
import {
  decodeSecret,
  TSIG_ALGORITHMS,
  type TsigAlgorithm,
  type TsigKey,
} from '../src/dns/tsig.js';
import { buildQuery, parseTlsaRdata, parseTxtRdata } from '../src/dns/update.js';
import { rcodeName, TYPE } from '../src/dns/wire.js';
import { normaliseName, type TlsaRecord } from '../src/tlsa/record.js';
import { registerSecret } from '../src/util/redact.js';
import type { DnsProvider, ProviderFactory, TxtRecords } from './contract.js';
import { mergeChanges, Pacer } from './kit.js';
import { readOptions } from './options.js';
import { RFC2136_OPTIONS } from './rfc2136-options.js';
import { chunks, rfc2136Dns, type UpdateItem } from './rfc2136-dns.js';

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

/** Reads in flight at once with one server. More do not read faster on loopback, and each
 *  answer that overflows a socket's receive buffer is only asked again after the timeout. */
const READ_WINDOW = 16;

/** Zones updated side by side by applyMany: a few, the server serialises updates per zone. */
const UPDATE_PACE = { concurrency: 4 };

/** Errors worth another try: SERVFAIL and no answer. */
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
  const { where, fail, ask, knownZone, zoneFromRead, findZone, update, updateTxt } = rfc2136Dns({
    name,
    server,
    port,
    timeoutS,
    key,
    zoneFixed,
  });

  /** ACME DNS-01: single TXT RRs added and deleted by UPDATE like TLSA (same prerequisite, never
   *  an RRset delete), so another client's challenge values at the owner stay. */
  const txt: TxtRecords = {
    async list(owner) {
      const o = normaliseName(owner);
      const zone = await findZone(o);
      const reply = await ask(`reading TXT at ${o}`, `zone ${zone}`, (id) =>
        buildQuery(id, o, TYPE.TXT, 1232),
      );
      const { rcode, aa } = reply.header;
      if (rcode === 3) return [];
      if (rcode !== 0 || !aa)
        throw fail(
          `reading TXT at ${o}: ${where} answered ${rcodeName(rcode)}${aa ? '' : ' without authority'}: it does not serve zone ${zone}`,
        );
      return recordsOf(reply)
        .filter((s) => s.section === 1 && s.type === TYPE.TXT && nameAt(reply, s.start) === o)
        .map((s) => parseTxtRdata(reply.message.subarray(s.rdataAt, s.end)));
    },
    async add(owner, values, ttl) {
      const o = normaliseName(owner);
      const add = [...new Set(values)];
      // Deleted and added in one message: a value already there takes the new TTL.
      if (add.length) await updateTxt(await findZone(o), { owner: o, add, remove: add, ttl });
    },
    async remove(owner, values) {
      const o = normaliseName(owner);
      const remove = [...new Set(values)];
      if (remove.length) await updateTxt(await findZone(o), { owner: o, add: [], remove, ttl: 0 });
    },
  };

  const pacer = new Pacer(UPDATE_PACE);
  const provider: DnsProvider = {
    name,
    txt,
    async list(owner) {
      const o = normaliseName(owner);
      // Reading needs no zone: an authoritative NOERROR or NXDOMAIN for the owner itself comes
      // from the zone that holds it. Any other answer finds the zone (SOA queries, as a write
      // does) before it is judged, so it fails as it would have with the zone found first.
      let zone = knownZone(o);
      const reply = await ask(
        `reading TLSA at ${o}`,
        zone ? `zone ${zone}` : `zone of ${o} not known yet`,
        // DO: in a signed zone the TLSA RRset comes with its RRSIG, which names the zone.
        (id) => buildQuery(id, o, TYPE.TLSA, 1232, true),
      );
      const { rcode, aa } = reply.header;
      if (!aa || (rcode !== 0 && rcode !== 3)) zone ??= await findZone(o);
      // The answer names the zone (RRSIG signer, SOA), so a write after this read asks no SOA.
      else if (!zone) zoneFromRead(o, reply);
      else if (zoneFixed) {
        // The option names another zone than the server's answer does (a child zone delegated
        // below it, say): the server would accept an UPDATE there and keep the records below
        // the cut, where no resolver looks.
        const named = zoneFromRead(o, reply);
        if (named && named !== zoneFixed)
          throw fail(
            `${o} is in zone ${named} on ${where} (its answer names it), not in zone ${zoneFixed} (option "zone"): records written to ${zoneFixed} would sit below a zone cut, where no resolver finds them; set "zone" to ${named}, or leave it out`,
          );
      }
      if (rcode === 3) return [];
      if (rcode !== 0 || !aa) {
        throw fail(
          `reading TLSA at ${o}: ${where} answered ${rcodeName(rcode)}${aa ? '' : ' without authority'}: it does not serve zone ${zone}`,
        );
      }
      const out: TlsaRecord[] = [];
      for (const s of recordsOf(reply)) {
        if (s.section !== 1 || s.type !== TYPE.TLSA || nameAt(reply, s.start) !== o) continue;
        out.push(parseTlsaRdata(o, reply.message.subarray(s.rdataAt, s.end)));
      }
      return out;
    },
    apply: (owner, change, ttl) => provider.applyMany!([{ owner, ...change }], () => ttl),
    async listMany(owners) {
      const out = new Map<string, TlsaRecord[]>();
      // Queries are cheap and independent: a few at a time, not one UPDATE-sized transfer.
      // Taken by index: shift() moves the whole rest of a list of thousands each time.
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(READ_WINDOW, owners.length) }, async () => {
          while (next < owners.length) {
            const o = owners[next++]!;
            out.set(normaliseName(o), await provider.list(o));
          }
        }),
      );
      return out;
    },
    async applyMany(changes, ttlOf) {
      // One item per owner (its changes merged), so that an owner's adds and removes always
      // travel in one message, whatever the split below. Each added record is also deleted
      // first, in the same message: a plain add of a record that is there is a no-op for Knot,
      // while delete + add gives the RRset the new TTL (rule 4), and with nothing in between.
      const byZone = new Map<string, UpdateItem[]>();
      for (const w of mergeChanges(name, changes, ttlOf)) {
        const zone = await findZone(w.owner);
        const item = { owner: w.owner, add: w.add, remove: [...w.remove, ...w.add], ttl: w.ttl };
        byZone.set(zone, [...(byZone.get(zone) ?? []), item]);
      }
      // Zones side by side (UPDATE_PACE); within a zone one UPDATE at a time.
      await pacer.each([...byZone], async ([zone, items]) => {
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
      });
    },
  };
  return provider;
};
