/**
 * A zone file whose TLSA owner already holds a line tlsa did not write, with another TTL than
 * tlsa's: Knot and BIND load one TTL per RRset, so the TTL tlsa writes and waits on must be the
 * one they serve. Both servers load the file the zonefile provider wrote (unsigned, loopback):
 *
 *  - high.test.: the hand-made line (TTL 240) is higher than tlsa's (120): effectiveTtl says 240,
 *    tlsa's lines are written with 240, both servers serve 240.
 *  - low.test.: the hand-made line (TTL 60) is lower: tlsa keeps 120; whatever a server serves
 *    is at most what tlsa waits on.
 *  - mixed.test.: the file as tlsa wrote it before (hand-made 240, then tlsa's 120): what each
 *    server really serves for one RRset of two TTLs (the premise of the above).
 *
 * TTLs stay within the lab BIND's max-zone-ttl (300).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createProvider } from '../../providers/zonefile.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { startBind, type BindServer } from '../lab/bind.js';
import { query } from '../lab/dig.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, makeTempDir, stopAll } from '../lab/lab.js';

const TTL = 120;
const hex = (): string => createHash('sha256').update(randomBytes(32)).digest('hex');
const tlsaAt = (owner: string): TlsaRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: hex(),
});
const line = (r: TlsaRecord, ttl: number, tail = '') =>
  `${r.owner} ${ttl} IN TLSA ${r.usage} ${r.selector} ${r.matching} ${r.data}${tail}`;

interface Case {
  zone: string;
  owner: string;
  file: string;
  /** What tlsa writes and waits on. */
  ttl: number;
}

labDescribe(
  'zonefile: a hand-made TLSA line with another TTL; Knot and BIND serve what tlsa waits on',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['named', 'bind9'],
    ['named-checkconf', 'bind9-utils'],
  ],
  () => {
    let dir: string;
    let knot: KnotServer;
    let bind: BindServer;
    const cases: Record<string, Case> = {};

    /** The zonefile provider publishes two records of its own beside a hand-made line. */
    async function publishBeside(zone: string, foreignTtl: number): Promise<Case> {
      const owner = `_25._tcp.mx.${zone}`;
      const file = join(dir, `${zone}zone`);
      writeFileSync(file, minimalZone(zone, line(tlsaAt(owner), foreignTtl, ' ; by hand')));
      const p = createProvider(
        { path: file },
        { instance: 'lab', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
      );
      const got = (await p.effectiveTtl?.(owner, TTL)) ?? TTL;
      const ttl = typeof got === 'number' ? got : got.ttl;
      await p.apply(owner, { add: [tlsaAt(owner), tlsaAt(owner)], remove: [] }, ttl);
      return { zone, owner, file, ttl };
    }

    beforeAll(async () => {
      dir = makeTempDir('zonefile-ttl');
      cases.high = await publishBeside('high.test.', 240);
      cases.low = await publishBeside('low.test.', 60);
      const owner = '_25._tcp.mx.mixed.test.';
      const file = join(dir, 'mixed.test.zone');
      writeFileSync(
        file,
        minimalZone(
          'mixed.test.',
          [line(tlsaAt(owner), 240), line(tlsaAt(owner), TTL, ' ; tlsa:managed')].join('\n'),
        ),
      );
      cases.mixed = { zone: 'mixed.test.', owner, file, ttl: TTL };
      const all = Object.values(cases);
      knot = await startKnot({
        zones: all.map((c) => ({ name: c.zone, zoneFilePath: c.file, dnssec: false })),
        timeoutMs: 60_000,
      });
      bind = await startBind({
        zones: all.map((c) => ({
          name: c.zone,
          zoneFileText: readFileSync(c.file, 'utf8'),
          dnssec: false,
        })),
        timeoutMs: 60_000,
      });
    }, 180_000);

    afterAll(async () => {
      await stopAll();
    }, 60_000);

    /** The TTLs of the TLSA answer records each server serves at the case's owner. */
    async function served(c: Case): Promise<Record<string, number[]>> {
      const out: Record<string, number[]> = {};
      for (const [name, s] of [
        ['knot', knot],
        ['bind', bind],
      ] as const) {
        const r = await query({
          server: s.host,
          port: s.port,
          name: c.owner,
          type: 'TLSA',
          recurse: false,
        });
        expect(r.rcode, r.raw).toBe('NOERROR');
        out[name] = r.records.filter((x) => x.type === 'TLSA').map((x) => x.ttl);
      }
      return out;
    }

    it('both servers serve one TTL for an RRset written with two (the premise)', async () => {
      const s = await served(cases.mixed!);
      console.log(`mixed 240 (hand-made, first) + 120 (tlsa): knot ${s.knot}, bind ${s.bind}`);
      for (const ttls of Object.values(s)) {
        expect(ttls).toHaveLength(2);
        expect(new Set(ttls).size).toBe(1);
      }
    });

    it('a hand-made line with a higher TTL: tlsa writes and waits on it, and it is what is served', async () => {
      const c = cases.high!;
      expect(c.ttl).toBe(240);
      const tlsaLines = readFileSync(c.file, 'utf8')
        .split('\n')
        .filter((l) => l.includes('tlsa:managed'));
      expect(tlsaLines).toHaveLength(2);
      for (const l of tlsaLines) expect(l).toContain(` 240 IN TLSA `);
      const s = await served(c);
      expect(s).toEqual({ knot: [240, 240, 240], bind: [240, 240, 240] });
    });

    it('a hand-made line with a lower TTL: tlsa keeps its own, never shorter than what is served', async () => {
      const c = cases.low!;
      expect(c.ttl).toBe(TTL);
      const s = await served(c);
      console.log(`low 60 (hand-made, first) + 120 (tlsa): knot ${s.knot}, bind ${s.bind}`);
      for (const ttls of Object.values(s)) {
        expect(ttls).toHaveLength(3);
        for (const t of ttls) expect(t).toBeLessThanOrEqual(c.ttl);
      }
    });
  },
);
