/**
 * The signed zone example.test. of the mail lab, on Knot (tlsa's zonefile provider writes an
 * $INCLUDEd fragment) or on PowerDNS (its API): NS ns1 and mx both at 127.0.0.1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKnot, type KnotServer } from './knot.js';
import { startPowerDns } from './powerdns.js';

export const MAIL_ZONE = 'example.test.';

export type AuthoritativeKind = 'knot' | 'powerdns';

/** The authoritative side: Knot with tlsa's zonefile provider, or PowerDNS with its API. */
export interface Authoritative {
  kind: AuthoritativeKind;
  host: string;
  port: number;
  /** The Knot server (undefined on PowerDNS). */
  knot: KnotServer | undefined;
  dsRecords(): string[];
  /** tlsa's provider block (the lines under `providers: NAME:`, unindented). */
  providerYaml(reload?: string): string[];
  /** Another writer puts its record at `ttl`; afterwards the servers serve the RRset at `ttl`.
   *  `tag` ends the zone-file line (Knot). */
  otherWriterSets(owner: string, rdata: string, ttl: number, tag?: string): Promise<void>;
}

export async function knotAuthoritative(dir: string, fragmentPath: string): Promise<Authoritative> {
  const zoneFile = join(dir, 'example.test.zone');
  writeFileSync(
    zoneFile,
    [
      `$ORIGIN ${MAIL_ZONE}`,
      '$TTL 300',
      `@ 300 IN SOA ns1.${MAIL_ZONE} hostmaster.${MAIL_ZONE} 1 3600 600 86400 60`,
      `@ 300 IN NS ns1.${MAIL_ZONE}`,
      'ns1 300 IN A 127.0.0.1',
      'mx 300 IN A 127.0.0.1',
      `$INCLUDE ${fragmentPath}`,
      '',
    ].join('\n'),
  );
  const knot = await startKnot({
    zones: [{ name: MAIL_ZONE, zoneFilePath: zoneFile, dnssec: true }],
  });
  return {
    kind: 'knot',
    host: knot.host,
    port: knot.port,
    knot,
    dsRecords: () => knot.dsRecords(MAIL_ZONE),
    providerYaml: (reload) => [
      'type: zonefile',
      `path: ${JSON.stringify(fragmentPath)}`,
      `reload: ${JSON.stringify(reload ?? knot.reloadCommand(MAIL_ZONE))}`,
    ],
    // Knot serves the RRset with the TTL of its last line in the zone file: the other writer
    // deletes its line and appends it again.
    async otherWriterSets(owner, rdata, ttl, tag = "the other writer's") {
      const lines = readFileSync(fragmentPath, 'utf8')
        .split('\n')
        .filter((l) => l && !l.includes(rdata));
      writeFileSync(
        fragmentPath,
        `${[...lines, `${owner} ${ttl} IN TLSA ${rdata} ; ${tag}`].join('\n')}\n`,
      );
      knot.reload(MAIL_ZONE);
    },
  };
}

export async function powerDnsAuthoritative(): Promise<Authoritative> {
  const pdns = await startPowerDns({ zones: [{ name: MAIL_ZONE, dnssec: true }] });
  const patch = async (rrsets: unknown[]) => {
    const r = await pdns.api('PATCH', `/zones/${MAIL_ZONE}`, { rrsets });
    if (r.status !== 204) throw new Error(`pdns PATCH: HTTP ${r.status} ${r.text}`);
  };
  await patch([
    {
      name: `mx.${MAIL_ZONE}`,
      type: 'A',
      ttl: 300,
      changetype: 'REPLACE',
      records: [{ content: '127.0.0.1', disabled: false }],
    },
  ]);
  return {
    kind: 'powerdns',
    host: pdns.host,
    port: pdns.dnsPort,
    knot: undefined,
    dsRecords: () => pdns.dsRecords(MAIL_ZONE),
    providerYaml: () => [
      'type: powerdns',
      `url: ${JSON.stringify(pdns.apiUrl)}`,
      `api_key: ${JSON.stringify(pdns.apiKey)}`,
      `zone: ${MAIL_ZONE}`,
    ],
    // Through the API an RRset has one TTL: the other writer replaces it with its record added.
    async otherWriterSets(owner, rdata, ttl) {
      const zone = (await pdns.api('GET', `/zones/${MAIL_ZONE}`)).body as {
        rrsets: { name: string; type: string; records: { content: string; disabled: boolean }[] }[];
      };
      const current = zone.rrsets.find((x) => x.name === owner && x.type === 'TLSA')?.records ?? [];
      const norm = (c: string) => c.toLowerCase().replace(/\s+/g, ' ');
      const records = [
        ...current.filter((x) => norm(x.content) !== rdata),
        { content: rdata, disabled: false },
      ];
      await patch([{ name: owner, type: 'TLSA', ttl, changetype: 'REPLACE', records }]);
    },
  };
}
