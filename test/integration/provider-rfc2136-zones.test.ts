/**
 * How the rfc2136 provider finds the zone of an owner name, counted request by request through
 * the loopback proxy on real Knot DNS and real BIND, each serving on one port:
 *   example.test.        signed, delegating child.example.test. (served here too) and
 *                        away.example.test. (served nowhere);
 *   child.example.test.  signed: a child zone below the owners' parent;
 *   plain.test.          unsigned.
 * A read is one TLSA query with EDNS DO; the answer names the zone for a later write: in a
 * signed zone the RRSIG over the TLSA RRset (its Signer's Name is the zone, RFC 4034 §3.1.7),
 * for an empty answer the SOA beside it. Records in an unsigned zone name none: SOA for a write.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DnsProvider } from '../../providers/contract.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { startBind } from '../lab/bind.js';
import { type DnsFaultProxy, startDnsFaultProxy } from '../lab/dns-fault-proxy.js';
import { minimalZone, startKnot } from '../lab/knot.js';
import { labDescribe, stopAll } from '../lab/lab.js';
import {
  BIND_TOOLS,
  KNOT_TOOLS,
  kdigTlsa,
  rfc2136Provider,
  type UpdateKey,
} from './contract/rfc2136.js';

const PARENT = 'example.test.';
const CHILD = 'child.example.test.';
const PLAIN = 'plain.test.';
const ZONES = [
  {
    name: PARENT,
    dnssec: true,
    zoneFileText: minimalZone(
      PARENT,
      [
        `${CHILD} 300 IN NS ns.${CHILD}`,
        `ns.${CHILD} 300 IN A 127.0.0.1`,
        `away.${PARENT} 300 IN NS ns.away.${PARENT}`,
        `ns.away.${PARENT} 300 IN A 127.0.0.1`,
      ].join('\n'),
    ),
  },
  { name: CHILD, dnssec: true },
  { name: PLAIN, dnssec: false },
];

const sorted = (rs: TlsaRecord[]): string[] => rs.map(recordKey).sort();
const rec = (owner: string, seed: string): TlsaRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: createHash('sha256')
    .update(`${seed}${owner}${randomBytes(4).toString('hex')}`)
    .digest('hex'),
});

interface Lab {
  label: 'Knot' | 'BIND';
  server: { host: string; port: number };
  key: UpdateKey;
  proxy: DnsFaultProxy;
}

let counter = 0;
const owner = (zone: string, label: string): string => `_25._tcp.${label}-${++counter}.${zone}`;

labDescribe(
  'rfc2136 on real Knot and BIND: the zone of an owner from its read (RRSIG signer, SOA), SOA queries only where a read names no zone',
  [...KNOT_TOOLS, ...BIND_TOOLS],
  () => {
    const labs: Lab[] = [];

    beforeAll(async () => {
      const key: UpdateKey = {
        name: 'tlsa-zones.',
        algorithm: 'hmac-sha256',
        secret: randomBytes(32).toString('base64'),
      };
      const [knot, bind] = await Promise.all([
        startKnot({ zones: ZONES, tsig: key, timeoutMs: 60_000 }),
        startBind({ zones: ZONES, tsig: key, timeoutMs: 60_000 }),
      ]);
      for (const [label, server] of [
        ['Knot', knot],
        ['BIND', bind],
      ] as const)
        labs.push({ label, server, key, proxy: await startDnsFaultProxy(server) });
    }, 120_000);
    afterAll(async () => {
      for (const l of labs) await l.proxy.stop();
      await stopAll();
    });

    for (const which of ['Knot', 'BIND'] as const) {
      const lab = (): Lab => labs.find((l) => l.label === which)!;
      /** A fresh provider (no zone known yet) talking through the counting proxy. */
      const fresh = (extra: Record<string, unknown> = {}): DnsProvider =>
        rfc2136Provider(lab().proxy, lab().key, { timeout_s: 10, ...extra });
      /** The requests since the last call: "QUERY 52" (TLSA), "QUERY 6" (SOA), "UPDATE <zone>". */
      const requests = (withTransport = false): string[] =>
        lab()
          .proxy.requests.splice(0)
          .map(
            (r) =>
              `${r.opcode === 5 ? `UPDATE ${r.qname}` : `QUERY ${r.qtype}`}${withTransport ? ` ${r.transport}` : ''}`,
          );
      /** Records put in place straight at the server (not through the proxy), zone given. */
      const seed = async (zone: string, owners: string[], n = 1): Promise<void> => {
        await rfc2136Provider(lab().server, lab().key, { zone, timeout_s: 10 }).applyMany!(
          owners.map((o) => ({
            owner: o,
            add: Array.from({ length: n }, (_, i) => rec(o, `seed${i}`)),
            remove: [],
          })),
          () => 300,
        );
      };

      it(`${which}: a no-op read of N owners (signed, child, unsigned, with and without records) is N TLSA queries and no SOA query`, async () => {
        const owners = [
          ...[1, 2, 3].map(() => owner(PARENT, 'noop')),
          ...[1, 2].map(() => owner(CHILD, 'noop')),
          ...[1, 2].map(() => owner(PLAIN, 'noop')),
        ];
        await seed(PARENT, owners.slice(0, 2));
        await seed(CHILD, owners.slice(3, 4));
        await seed(PLAIN, owners.slice(5, 6));
        requests();
        const listed = await fresh().listMany!(owners);
        expect(owners.map((o) => listed.get(o)!.length)).toEqual([1, 1, 0, 1, 0, 1, 0]);
        expect(requests()).toEqual(owners.map(() => 'QUERY 52'));
      });

      it(`${which}: a publish into a signed zone whose owners have records asks no SOA (the zone is the RRSIG's signer) and sends one UPDATE`, async () => {
        const owners = [1, 2, 3, 4].map(() => owner(PARENT, 'signed'));
        await seed(PARENT, owners);
        const p = fresh();
        requests();
        const before = await p.listMany!(owners);
        expect(requests()).toEqual(owners.map(() => 'QUERY 52'));
        const adds = owners.map((o) => rec(o, 'new'));
        await p.applyMany!(
          owners.map((o, i) => ({ owner: o, add: [adds[i]!], remove: before.get(o)! })),
          () => 300,
        );
        expect(requests()).toEqual([`UPDATE ${PARENT}`]);
        for (const [i, o] of owners.entries())
          expect(sorted(await kdigTlsa(lab().server, o))).toEqual(sorted([adds[i]!]));
      });

      it(`${which}: an owner in a child zone delegated below its parent on the same server is written to the child (the signer), one UPDATE per zone, no SOA query`, async () => {
        const inChild = [1, 2].map(() => owner(CHILD, 'child'));
        const inParent = owner(PARENT, 'parent');
        await seed(CHILD, inChild);
        await seed(PARENT, [inParent]);
        const p = fresh();
        requests();
        const all = [...inChild, inParent];
        const before = await p.listMany!(all);
        expect(requests()).toEqual(all.map(() => 'QUERY 52'));
        const adds = all.map((o) => rec(o, 'more'));
        await p.applyMany!(
          all.map((o, i) => ({ owner: o, add: [adds[i]!], remove: [] })),
          () => 300,
        );
        expect(requests().sort()).toEqual([`UPDATE ${CHILD}`, `UPDATE ${PARENT}`]);
        for (const [i, o] of all.entries())
          expect(sorted(await kdigTlsa(lab().server, o))).toEqual(
            sorted([...before.get(o)!, adds[i]!]),
          );
      });

      it(`${which}: an unsigned zone's records name no zone: the write after the read finds it by SOA query`, async () => {
        const o = owner(PLAIN, 'plain');
        await seed(PLAIN, [o]);
        const p = fresh();
        requests();
        const before = await p.list(o);
        expect(before).toHaveLength(1);
        expect(requests()).toEqual(['QUERY 52']);
        await p.apply(o, { add: [], remove: before }, 300);
        expect(requests()).toEqual(['QUERY 6', `UPDATE ${PLAIN}`]);
        expect(await kdigTlsa(lab().server, o)).toEqual([]);
      });

      it(`${which}: 40 records: the signed answer, truncated over UDP, comes again over TCP and still names the zone for the write`, async () => {
        const o = owner(PARENT, 'many');
        await seed(PARENT, [o], 40);
        const p = fresh();
        requests();
        const before = await p.list(o);
        expect(before).toHaveLength(40);
        expect(requests(true)).toEqual(['QUERY 52 udp', 'QUERY 52 tcp']);
        await p.apply(o, { add: [], remove: before.slice(1) }, 300);
        expect(requests(true)).toEqual([`UPDATE ${PARENT} tcp`]);
        expect(sorted(await kdigTlsa(lab().server, o))).toEqual(sorted(before.slice(0, 1)));
      });

      it(`${which}: a "zone" option naming the parent of the zone the signer names fails the read, nothing written; a delegation served nowhere (a referral) still walks up by SOA and fails naming it`, async () => {
        const o = owner(CHILD, 'option');
        await seed(CHILD, [o]);
        requests();
        // Knot and BIND would both answer NOERROR to an UPDATE of the parent and keep what it
        // adds below the cut: the read refuses first.
        const wrong = await fresh({ zone: PARENT })
          .list(o)
          .then(
            () => undefined,
            (e: Error) => e,
          );
        expect(wrong?.name).toBe('ProviderError');
        expect(wrong!.message).toContain(`${o} is in zone ${CHILD} on `);
        expect(wrong!.message).toContain(
          `(its answer names it), not in zone ${PARENT} (option "zone")`,
        );
        expect(requests()).toEqual(['QUERY 52']);
        // The option naming the zone the signer names is taken as it is.
        const right = fresh({ zone: CHILD });
        const before = await right.list(o);
        expect(before).toHaveLength(1);
        await right.apply(o, { add: [], remove: before }, 300);
        expect(requests()).toEqual(['QUERY 52', `UPDATE ${CHILD}`]);
        expect(await right.list(o)).toEqual([]);
        requests();

        const away = owner(`away.${PARENT}`, 'away');
        const read = await fresh()
          .list(away)
          .then(
            () => undefined,
            (e: Error) => e,
          );
        expect(read?.name).toBe('ProviderError');
        expect(read!.message).toMatch(/without authority: it does not serve zone/);
        const seen = requests();
        expect(seen[0]).toBe('QUERY 52');
        expect(seen.slice(1).every((r) => r === 'QUERY 6')).toBe(true);
        expect(seen.length).toBeGreaterThan(2);
      });
    }
  },
);
