/**
 * A zone on Knot whose TLSA records live in an $INCLUDEd fragment that tlsa's zonefile provider
 * writes, and an unbound that resolves it: the small lab several integration tests share.
 * The zone has SOA, NS (NS_LABEL.ZONE → 127.0.0.1) and mx.ZONE → 127.0.0.1; the SOA MINIMUM
 * (negative TTL) is small so that a test sees new names quickly.
 */
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { type KnotServer, startKnot } from './knot.js';
import { type UnboundOptions, type UnboundServer, startUnbound } from './unbound.js';

export interface FragmentZoneOptions {
  /** Absolute zone name with the trailing dot, e.g. 'example.test.'. */
  zone: string;
  /** The zone file's name in `dir` (default: ZONE + 'zone', e.g. example.test.zone). */
  file?: string;
  /** The name server's label (default 'ns'). */
  nsLabel?: string;
  /** SOA MINIMUM, the negative TTL (default 2). */
  minimum?: number;
  /** The fragment's first line (a comment). */
  header?: string;
}

export interface FragmentZone {
  zoneFile: string;
  /** The file tlsa's zonefile provider writes (`path:` of the provider). */
  fragment: string;
}

export function writeFragmentZone(dir: string, o: FragmentZoneOptions): FragmentZone {
  const { zone } = o;
  const ns = o.nsLabel ?? 'ns';
  const fragment = join(dir, 'tlsa.fragment');
  writeFileSync(fragment, `${o.header ?? '; tlsa writes the lines marked tlsa:managed'}\n`);
  const zoneFile = join(dir, o.file ?? `${zone}zone`);
  writeFileSync(
    zoneFile,
    [
      `$ORIGIN ${zone}`,
      '$TTL 300',
      `@ 300 IN SOA ${ns}.${zone} hostmaster.${zone} 1 3600 600 86400 ${o.minimum ?? 2}`,
      `@ 300 IN NS ${ns}.${zone}`,
      `${ns} 300 IN A 127.0.0.1`,
      'mx 300 IN A 127.0.0.1',
      `$INCLUDE ${fragment}`,
      '',
    ].join('\n'),
  );
  return { zoneFile, fragment };
}

export interface FragmentZoneLab extends FragmentZone {
  knot: KnotServer;
  unbound: UnboundServer;
}

/** The zone on Knot (signed when `dnssec`, then unbound validates with its DS) and an unbound
 *  stubbed to it. Both are stopped by the lab's stopAll(). */
export async function startFragmentZone(
  dir: string,
  o: FragmentZoneOptions & {
    dnssec: boolean;
    unbound?: Omit<UnboundOptions, 'stubs' | 'trustAnchors'>;
  },
): Promise<FragmentZoneLab> {
  const files = writeFragmentZone(dir, o);
  const knot = await startKnot({
    zones: [{ name: o.zone, zoneFilePath: files.zoneFile, dnssec: o.dnssec }],
  });
  const unbound = await startUnbound({
    stubs: [{ zone: o.zone, port: knot.port }],
    trustAnchors: o.dnssec ? knot.dsRecords(o.zone) : [],
    ...o.unbound,
  });
  return { ...files, knot, unbound };
}
