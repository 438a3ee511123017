/**
 * The rfc2136 provider against real Knot DNS and real BIND on loopback (the shared contract
 * runs in provider-contract.test.ts), and what only a real server can show:
 *  - the update is DNSSEC-signed by the server (an RRSIG covers the new TLSA RRset);
 *  - 40 records in one UPDATE go over TCP (through a TCP-only relay) and a list of them comes
 *    back through the UDP-truncated-then-TCP path;
 *  - a wrong TSIG secret gives a ProviderError that says TSIG and never shows the secret;
 *  - least privilege works: Knot's key may update only TLSA (`update-type: [TLSA]`), BIND's
 *    only TLSA under mx.example.test. (`grant KEY subdomain mx.example.test. TLSA`), and the
 *    CNAME prerequisite needs no more; outside the grant BIND answers REFUSED.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { recordKey } from '../../src/tlsa/record.js';
import { query } from '../lab/dig.js';
import { startDnsFaultProxy } from '../lab/dns-fault-proxy.js';
import { freePort, labDescribe, stopAll } from '../lab/lab.js';
import {
  BIND_TOOLS,
  KNOT_TOOLS,
  bindForUpdates,
  kdigTlsa,
  knotForUpdates,
  rfc2136Provider,
  type UpdateKey,
} from './contract/rfc2136.js';

const sorted = (rs: TlsaRecord[]): string[] => rs.map(recordKey).sort();
const rec = (owner: string, seed: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data: createHash('sha256')
    .update(`${seed}${owner}${randomBytes(4).toString('hex')}`)
    .digest('hex'),
});

/** A TCP-only relay to a DNS server: nothing listens on its UDP port. Counts connections. */
async function tcpRelay(target: {
  host: string;
  port: number;
}): Promise<{ host: string; port: number; connections: number; close(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  const relay = {
    host: '127.0.0.1',
    port,
    connections: 0,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((client) => {
    relay.connections++;
    const upstream = connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return relay;
}

interface Lab {
  label: string;
  server: { host: string; port: number };
  key: UpdateKey;
  /** An owner name the key may update. */
  owner(label: string): string;
}

let counter = 0;

labDescribe(
  'rfc2136 provider on real Knot and BIND: DNSSEC, TCP, TSIG errors, least privilege',
  [...KNOT_TOOLS, ...BIND_TOOLS],
  () => {
    const labs: Lab[] = [];

    beforeAll(async () => {
      const [k, b] = await Promise.all([
        knotForUpdates('hmac-sha256', ['TLSA']),
        bindForUpdates(
          'hmac-sha256',
          (keyName) => `grant "${keyName}" subdomain mx.example.test. TLSA;`,
        ),
      ]);
      labs.push(
        {
          label: 'Knot',
          server: k.knot,
          key: k.key,
          owner: (l) => `_25._tcp.${l}-${++counter}.mx.example.test.`,
        },
        {
          label: 'BIND',
          server: b.bind,
          key: b.key,
          owner: (l) => `_25._tcp.${l}-${++counter}.mx.example.test.`,
        },
      );
    }, 60_000);
    afterAll(stopAll);

    for (const which of ['Knot', 'BIND'] as const) {
      const lab = (): Lab => labs.find((l) => l.label === which)!;

      it(`${which}: applyMany changes many owner names in one UPDATE; listMany reads them back`, async () => {
        const { server, key } = lab();
        const owners = Array.from({ length: 30 }, (_, i) => lab().owner(`many${i}`));
        const p = rfc2136Provider(server, key);
        await p.applyMany!(
          owners.map((o) => ({ owner: o, add: [rec(o, 'x'), rec(o, 'y', 2)], remove: [] })),
          () => 300,
        );
        const listed = await p.listMany!(owners);
        for (const o of owners) {
          expect(listed.get(o)).toHaveLength(2);
          expect(sorted(await kdigTlsa(server, o))).toEqual(sorted(listed.get(o)!));
        }
        const first = listed.get(owners[0]!)![0]!;
        await p.applyMany!(
          [
            { owner: owners[0]!, add: [], remove: [first] },
            { owner: owners[1]!, add: [rec(owners[1]!, 'z')], remove: [] },
          ],
          () => 300,
        );
        expect(await kdigTlsa(server, owners[0]!)).toHaveLength(1);
        expect(await kdigTlsa(server, owners[1]!)).toHaveLength(3);
      });

      it(`${which}: the server signs the updated TLSA RRset (RRSIG TLSA via kdig +dnssec)`, async () => {
        const { server, key } = lab();
        const o = lab().owner('signed');
        await rfc2136Provider(server, key).apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
        const r = await query({
          server: server.host,
          port: server.port,
          name: o,
          type: 'TLSA',
          dnssec: true,
          recurse: false,
          tcp: true,
        });
        expect(r.rcode).toBe('NOERROR');
        expect(r.flags).toContain('aa');
        const sigs = r.records.filter((a) => a.type === 'RRSIG' && a.owner === o);
        expect(
          sigs.map((s) => s.rdata.split(' ')[0]),
          r.raw,
        ).toEqual(['TLSA']);
        // Signer name is the zone, algorithm 13 (ECDSA P-256 SHA-256).
        expect(sigs[0]!.rdata.split(' ')).toEqual(expect.arrayContaining(['13', 'example.test.']));
      });

      it(`${which}: 40 records in one UPDATE go over TCP and land; list reads them back through UDP truncation`, async () => {
        const { server, key } = lab();
        const o = lab().owner('bulk');
        const records = Array.from({ length: 40 }, (_, i) => rec(o, `bulk${i}`));
        const relay = await tcpRelay(server);
        try {
          // Through the TCP-only relay: a UDP attempt would find nobody listening.
          await rfc2136Provider(relay, key, { zone: 'example.test.', timeout_s: 2 }).apply(
            o,
            { add: records, remove: [] },
            300,
          );
          expect(relay.connections).toBe(1);
        } finally {
          await relay.close();
        }
        expect(sorted(await kdigTlsa(server, o))).toEqual(sorted(records));
        const p = rfc2136Provider(server, key);
        expect(sorted(await p.list(o))).toEqual(sorted(records));
        await p.apply(o, { add: [], remove: records.slice(0, 39) }, 300);
        expect(sorted(await kdigTlsa(server, o))).toEqual(sorted(records.slice(39)));
      });

      it(`${which}: a read is one TLSA query (no SOA query); a write after it asks no SOA (the empty read's SOA, the records' RRSIG name the signed zone); a name outside every zone still fails naming the SOA queries`, async () => {
        const { server, key } = lab();
        const proxy = await startDnsFaultProxy(server);
        try {
          const o = lab().owner('onequery');
          const p = rfc2136Provider(proxy, key);
          const kinds = () =>
            proxy.requests
              .splice(0)
              .map((r) => `${r.opcode === 5 ? 'UPDATE' : 'QUERY'} ${r.qtype}`);
          expect(await p.list(o)).toEqual([]);
          expect(kinds()).toEqual(['QUERY 52']);
          // The empty answer named the zone: the write needs no SOA query.
          await p.apply(o, { add: [rec(o, 'x')], remove: [] }, 300);
          expect(kinds()).toEqual(['UPDATE 6']);
          // A fresh instance reads the record (the zone named by its RRSIG's signer), then writes.
          const q = rfc2136Provider(proxy, key);
          expect(await q.list(o)).toHaveLength(1);
          expect(kinds()).toEqual(['QUERY 52']);
          await q.apply(o, { add: [], remove: await q.list(o) }, 300);
          expect(kinds()).toEqual(['QUERY 52', 'UPDATE 6']);
          expect(await kdigTlsa(server, o)).toEqual([]);
          const outside = '_25._tcp.mx.not-served.invalid.';
          const err = await p.list(outside).then(
            () => undefined,
            (e: Error) => e,
          );
          expect(err?.name).toBe('ProviderError');
          expect(err!.message).toMatch(
            /serves no zone that contains _25\._tcp\.mx\.not-served\.invalid\. \(SOA queries: /,
          );
          expect(kinds()[0]).toBe('QUERY 52');
        } finally {
          await proxy.stop();
        }
      });

      it(`${which}: a wrong TSIG secret fails with a TSIG message that names server and zone, without the secret`, async () => {
        const { server, key } = lab();
        const o = lab().owner('badsig');
        const bad = randomBytes(32).toString('base64');
        const err = await rfc2136Provider(
          server,
          { ...key, secret: bad },
          { zone: 'example.test.' },
        )
          .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
          .then(
            () => undefined,
            (e: Error) => e,
          );
        expect(err?.name).toBe('ProviderError');
        expect(err!.message).toMatch(/TSIG key rejected/);
        expect(err!.message).toMatch(/BADSIG/);
        expect(err!.message).toContain(`port ${server.port}`);
        expect(err!.message).toContain('example.test.');
        for (const s of [bad, key.secret]) expect(err!.message).not.toContain(s);
        expect(await kdigTlsa(server, o)).toEqual([]);
      });
    }

    it('BIND: outside the update-policy grant the server answers REFUSED, and the message says so', async () => {
      const { server, key } = labs.find((l) => l.label === 'BIND')!;
      const o = `_25._tcp.other-${++counter}.example.test.`;
      const err = await rfc2136Provider(server, key)
        .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toMatch(
        /REFUSED: the server refuses updates for this zone from this key \(check its ACL \/ update-policy/,
      );
    });

    it('Knot: a key whose acl lacks the type is answered NOTAUTH/BADKEY, and the message names the acl', async () => {
      // Knot's key here may update TLSA only; a second Knot whose key may update TXT only.
      const { knot, key } = await knotForUpdates('hmac-sha256', ['TXT']);
      const o = `_25._tcp.mx.example.test.`;
      const err = await rfc2136Provider(knot, key)
        .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toMatch(/TSIG key rejected .*NOTAUTH \(BADKEY\).*acl/);
      await knot.stop();
    });
  },
);
