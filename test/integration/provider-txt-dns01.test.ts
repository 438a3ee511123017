/**
 * TXT records for ACME DNS-01 (providers/contract.ts TxtRecords) through the rfc2136 provider
 * on real Knot and BIND (TSIG-signed UPDATE) and the powerdns provider on a real pdns_server
 * (HTTP API). Foreign values are seeded and everything is read back with independent tools
 * (knsupdate/nsupdate, the PowerDNS API, kdig): an add keeps foreign values, a remove takes
 * only ours, a CNAME at the owner is refused and kept, any spelling of the owner works, and
 * adding a present value or removing an absent one changes nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DnsProvider } from '../../providers/contract.js';
import { query } from '../lab/dig.js';
import { labDescribe, stopAll } from '../lab/lab.js';
import { pdnsProvider, pdnsReplace, PDNS_ZONE } from './contract/powerdns.js';
import {
  BIND_TOOLS,
  bindForUpdates,
  KNOT_TOOLS,
  knotForUpdates,
  rfc2136Provider,
  runUpdateTool,
} from './contract/rfc2136.js';
import { POWERDNS_TOOLS, startPowerDns } from '../lab/powerdns.js';

/** A DNS-01 value: 43 characters of base64url, as the digest is. */
const value = (): string => randomBytes(32).toString('base64url');

interface Target {
  label: string;
  server: { host: string; port: number };
  provider: () => DnsProvider;
  addForeign(owner: string, text: string): Promise<void>;
  addCname(owner: string, target: string): Promise<void>;
}

/** The TXT values at `owner` as the server answers them (kdig, TCP, no recursion). */
async function served(server: { host: string; port: number }, owner: string): Promise<string[]> {
  const r = await query({
    server: server.host,
    port: server.port,
    name: owner,
    type: 'TXT',
    recurse: false,
    tcp: true,
  });
  if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN')
    throw new Error(`kdig ${owner} TXT: ${r.rcode}\n${r.raw}`);
  return r.records
    .filter((a) => a.type === 'TXT' && a.owner === owner)
    .map((a) => a.rdata.replace(/^"|"$/g, ''))
    .sort();
}

let n = 0;
const owner = (label: string) => `_acme-challenge.${label}-${++n}.example.test.`;

labDescribe(
  'TXT for DNS-01: rfc2136 (Knot, BIND) and powerdns on real servers',
  [...KNOT_TOOLS, ...BIND_TOOLS, ...POWERDNS_TOOLS],
  () => {
    const targets: Target[] = [];
    beforeAll(async () => {
      const [k, b, pdns] = await Promise.all([
        knotForUpdates('hmac-sha256', ['TLSA', 'TXT', 'CNAME']),
        bindForUpdates('hmac-sha256'),
        startPowerDns({ zones: [{ name: PDNS_ZONE, dnssec: false }] }),
      ]);
      for (const [label, lab, tool] of [
        ['Knot', { server: k.knot, key: k.key }, 'knsupdate'],
        ['BIND', { server: b.bind, key: b.key }, 'nsupdate'],
      ] as const)
        targets.push({
          label,
          server: lab.server,
          provider: () => rfc2136Provider(lab.server, lab.key),
          addForeign: (o, text) =>
            runUpdateTool(tool, lab.server, lab.key, [`update add ${o} 300 TXT "${text}"`]),
          addCname: (o, t) =>
            runUpdateTool(tool, lab.server, lab.key, [`update add ${o} 300 CNAME ${t}`]),
        });
      const pdnsTxt = async (o: string): Promise<string[]> => {
        const res = await pdns.api('GET', `/zones/${PDNS_ZONE}`);
        const rrsets = (
          res.body as { rrsets: { name: string; type: string; records: { content: string }[] }[] }
        ).rrsets;
        return (rrsets.find((r) => r.name === o && r.type === 'TXT')?.records ?? []).map(
          (r) => r.content,
        );
      };
      targets.push({
        label: 'PowerDNS',
        server: { host: pdns.host, port: pdns.dnsPort },
        provider: () => pdnsProvider(pdns),
        addForeign: async (o, text) =>
          pdnsReplace(pdns, PDNS_ZONE, o, 'TXT', 300, [
            ...(await pdnsTxt(o)).map((content) => ({ content })),
            { content: `"${text}"` },
          ]),
        addCname: (o, t) => pdnsReplace(pdns, PDNS_ZONE, o, 'CNAME', 300, [{ content: t }]),
      });
    }, 120_000);
    afterAll(stopAll);

    for (const which of ['Knot', 'BIND', 'PowerDNS'] as const) {
      const t = (): Target => targets.find((x) => x.label === which)!;

      it(`${which}: add keeps foreign values; remove takes only ours; list sees both`, async () => {
        const o = owner('foreign');
        const foreign = 'v=spf1 -all';
        const other = value(); // another client's challenge at the same name
        await t().addForeign(o, foreign);
        await t().addForeign(o, other);
        const p = t().provider();
        const ours = [value(), value()];
        await p.txt!.add(o, ours, 60);
        await p.txt!.flush?.();
        expect(await served(t().server, o)).toEqual([foreign, other, ...ours].sort());
        expect((await p.txt!.list(o)).sort()).toEqual([foreign, other, ...ours].sort());
        // Adding a present value again changes nothing; removing an absent one is no error.
        await p.txt!.add(o, [ours[0]!], 60);
        await p.txt!.remove(o, [value()]);
        expect(await served(t().server, o)).toEqual([foreign, other, ...ours].sort());
        await p.txt!.remove(o, ours);
        expect(await served(t().server, o)).toEqual([foreign, other].sort());
      });

      it(`${which}: any spelling of the owner (case, no trailing dot) reaches the same name`, async () => {
        const o = owner('spelling');
        const p = t().provider();
        const v = value();
        await p.txt!.add(o.toUpperCase().replace(/\.$/, ''), [v], 60);
        expect(await served(t().server, o)).toEqual([v]);
        expect(await p.txt!.list(o.replace('_acme-challenge', '_ACME-Challenge'))).toEqual([v]);
        await p.txt!.remove(`${o.replace(/\.$/, '').toUpperCase()}.`, [v]);
        expect(await served(t().server, o)).toEqual([]);
      });

      it(`${which}: a CNAME at the owner is refused, named, and kept`, async () => {
        const o = owner('cname');
        await t().addCname(o, 'elsewhere.example.test.');
        const p = t().provider();
        const err = await p.txt!.add(o, [value()], 60).then(
          () => undefined,
          (e: unknown) => e as Error & { exitCode?: number },
        );
        expect(err?.exitCode).toBe(3);
        expect(err?.message).toMatch(new RegExp(`${o.replace(/\./g, '\\.')} has a CNAME`));
        const r = await query({
          server: t().server.host,
          port: t().server.port,
          name: o,
          type: 'CNAME',
          recurse: false,
          tcp: true,
        });
        expect(r.records.filter((a) => a.type === 'CNAME').map((a) => a.rdata)).toEqual([
          'elsewhere.example.test.',
        ]);
      });
    }
  },
);
