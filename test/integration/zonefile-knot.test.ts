/**
 * The zone file written by the `zonefile` provider is loaded by Knot, and the record is visible
 * with the AD bit through a validating unbound.
 *
 * One Knot serves two signed zones:
 *  - example.test.  : the provider writes the zone file itself (SOA, NS, A and a foreign TLSA
 *                     line written by hand stay as they are);
 *  - fragment.test. : the zone file `$INCLUDE`s a fragment file, and the provider writes only
 *                     the fragment.
 *  - serial.test.   : unsigned, `zonefile-load: difference` (Knot serves the file's own
 *                     serial): a parenthesised SOA, a TLSA
 *                     record spread over lines in upper-case split hex, an `$INCLUDE` holding
 *                     a record tlsa wants too; the provider bumps the serial (`dateserial`).
 * The provider's reload command is `knotc -b zone-reload ZONE`; for the first two zones it never
 * changes the SOA serial, Knot (zonefile-load: difference-no-serial) picks the edit up anyway.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createProvider } from '../../providers/zonefile.js';
import type { DnsProvider } from '../../providers/contract.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { query, rdataOf, type QueryResult } from '../lab/dig.js';
import { startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, makeTempDir, stopAll } from '../lab/lab.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';
import { readTxtText } from './contract/txt-suite.js';

const sha256hex = (): string => createHash('sha256').update(randomBytes(32)).digest('hex');
const rdata = (r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): string =>
  `${r.usage} ${r.selector} ${r.matching} ${r.data}`;
const lower = (xs: string[]): string[] => xs.map((x) => x.toLowerCase());

const ZONE1 = 'example.test.';
const ZONE2 = 'fragment.test.';
const OWNER1 = `_25._tcp.mx.${ZONE1}`;
const OWNER2 = `_25._tcp.mx.${ZONE2}`;
const ZONE3 = 'serial.test.';
const OWNER3 = `_25._tcp.mx.${ZONE3}`;
const TTL = 300;

labDescribe(
  'zonefile provider -> Knot (signed) -> unbound (AD)',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
  ],
  () => {
    let knot: KnotServer;
    let unbound: UnboundServer;
    let dir: string;
    let zone1Text: string;
    let zone2Text: string;
    let fragmentPath: string;
    let fragmentText: string;

    const foreign1: TlsaRecord = {
      owner: OWNER1,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };
    const foreign2: TlsaRecord = {
      owner: OWNER2,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };
    const ours1: TlsaRecord = {
      owner: OWNER1,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };
    const ours2: TlsaRecord = {
      owner: OWNER2,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };

    let provider1: DnsProvider;
    let provider2: DnsProvider;
    let provider3: DnsProvider;
    let zone3Text: string;
    let include3Text: string;
    const spread3: TlsaRecord = {
      owner: OWNER3,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };
    const included3: TlsaRecord = {
      owner: OWNER3,
      usage: 2,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };
    const ours3: TlsaRecord = {
      owner: OWNER3,
      usage: 3,
      selector: 1,
      matching: 1,
      data: sha256hex(),
    };

    const viaUnbound = async (zone: string, name: string, type: string): Promise<QueryResult> => {
      await unbound.flush(zone);
      return query({ server: unbound.host, port: unbound.port, name, type, dnssec: true });
    };
    const viaKnot = (name: string, type: string): Promise<QueryResult> =>
      query({ server: knot.host, port: knot.port, name, type, dnssec: true, recurse: false });

    beforeAll(async () => {
      dir = makeTempDir('zonefile-knot');

      // Zone 1: a hand-written zone file with $ORIGIN, relative names, a multi-line SOA, comments
      // and a foreign TLSA record; the provider manages this very file.
      zone1Text = [
        `$ORIGIN ${ZONE1}`,
        '$TTL 300',
        '; lab zone: the zonefile provider appends its lines and keeps every other line',
        '@\tIN SOA ns.example.test. hostmaster.example.test. (',
        '\t\t1     ; serial: the provider never changes it',
        '\t\t3600 600 86400 60 )',
        '\tIN NS ns.example.test.',
        'ns\tIN A 127.0.0.1',
        'mx\tIN A 127.0.0.1',
        `${OWNER1} ${TTL} IN TLSA ${rdata(foreign1)}`,
        '',
      ].join('\n');
      const zone1Path = join(dir, `${ZONE1}zone`);
      writeFileSync(zone1Path, zone1Text);

      // Zone 2: the zone file $INCLUDEs a fragment; the provider manages only the fragment.
      fragmentPath = join(dir, `${ZONE2}tlsa`);
      fragmentText = '; TLSA records written by the zonefile provider\n';
      writeFileSync(fragmentPath, fragmentText);
      zone2Text = [
        '$TTL 300',
        `${ZONE2} 300 IN SOA ns.${ZONE2} hostmaster.${ZONE2} 1 3600 600 86400 60`,
        `${ZONE2} 300 IN NS ns.${ZONE2}`,
        `ns.${ZONE2} 300 IN A 127.0.0.1`,
        `mx.${ZONE2} 300 IN A 127.0.0.1`,
        `${OWNER2} ${TTL} IN TLSA ${rdata(foreign2)}`,
        `$INCLUDE ${fragmentPath}`,
        '',
      ].join('\n');
      const zone2Path = join(dir, `${ZONE2}zone`);
      writeFileSync(zone2Path, zone2Text);

      // Zone 3: what RFC 1035 allows and a careless parser gets wrong, plus an $INCLUDE holding
      // a record tlsa will be asked to add (it must not be written twice).
      const upperSplit = (hex: string) => hex.toUpperCase().match(/.{1,16}/g)!;
      const spreadHex = upperSplit(spread3.data);
      zone3Text = [
        `$ORIGIN ${ZONE3}`,
        '$TTL 300',
        '@\tIN SOA ns hostmaster ( ; the SOA across four lines',
        '\t\t2024010101 ; serial: bumped by the provider (serial: dateserial)',
        '\t\t3600 600 86400',
        '\t\t60 )',
        '\tIN NS ns',
        'ns\tIN A 127.0.0.1',
        'txt\tIN TXT "a ( in quotes ; not a comment"',
        '_25._tcp.mx 300 IN TLSA ( 3 1 1 ; Knot 3.2 reads no mnemonics here',
        `\t${spreadHex.slice(0, 2).join(' ')}`,
        `\t${spreadHex.slice(2).join(' ')} ) ; foreign, spread over lines`,
        `$INCLUDE ${ZONE3}inc mx.${ZONE3}`,
        '',
      ].join('\n');
      include3Text = `; included: a foreign record tlsa is also asked to publish\n_25._tcp IN TLSA 2 1 1 ${included3.data}\n`;
      const zone3Path = join(dir, `${ZONE3}zone`);
      writeFileSync(zone3Path, zone3Text);
      writeFileSync(join(dir, `${ZONE3}inc`), include3Text);

      knot = await startKnot({
        zones: [
          { name: ZONE1, zoneFilePath: zone1Path, dnssec: true },
          { name: ZONE2, zoneFilePath: zone2Path, dnssec: true },
          { name: ZONE3, zoneFilePath: zone3Path, dnssec: false, zonefileLoad: 'difference' },
        ],
      });
      unbound = await startUnbound({
        stubs: [
          { zone: ZONE1, port: knot.port, host: knot.host },
          { zone: ZONE2, port: knot.port, host: knot.host },
        ],
        trustAnchors: [...knot.dsRecords(ZONE1), ...knot.dsRecords(ZONE2)],
      });

      const ctx = {
        instance: 'lab',
        baseDir: dir,
        optionError: (_k: string, m: string) => new Error(m),
      };
      provider1 = createProvider(
        { path: zone1Path, reload: knot.reloadCommand(ZONE1), reload_timeout_s: 20 },
        ctx,
      );
      // A relative path: resolved against baseDir.
      provider2 = createProvider(
        { path: `${ZONE2}tlsa`, reload: knot.reloadCommand(ZONE2), reload_timeout_s: 20 },
        ctx,
      );
      provider3 = createProvider(
        {
          path: zone3Path,
          reload: knot.reloadCommand(ZONE3),
          reload_timeout_s: 20,
          serial: 'dateserial',
        },
        ctx,
      );
    });

    afterAll(async () => {
      await stopAll();
    });

    it('the lab validates: the zones are signed and unbound sets AD before any change', async () => {
      for (const [zone, owner, foreign] of [
        [ZONE1, OWNER1, foreign1],
        [ZONE2, OWNER2, foreign2],
      ] as const) {
        const r = await viaUnbound(zone, owner, 'TLSA');
        expect(r.rcode, r.raw).toBe('NOERROR');
        expect(r.flags, r.raw).toContain('ad');
        expect(lower(rdataOf(r, 'TLSA'))).toEqual([rdata(foreign)]);
      }
    });

    it('scenario 1: a record added to the zone file is served by Knot and validated by unbound (AD)', async () => {
      expect(await provider1.list(OWNER1)).toEqual([foreign1]);
      await provider1.apply(OWNER1, { add: [ours1], remove: [] }, TTL);

      // The provider kept every line it does not own, byte for byte, and the SOA serial as it was.
      const written = readFileSync(knot.zoneFiles[ZONE1]!, 'utf8');
      expect(written.startsWith(zone1Text)).toBe(true);
      expect(written.slice(zone1Text.length)).toBe(
        `${OWNER1} ${TTL} IN TLSA ${rdata(ours1)} ; tlsa:managed\n`,
      );

      await provider1.flush!();

      const direct = await viaKnot(OWNER1, 'TLSA');
      expect(direct.flags, direct.raw).toContain('aa');
      expect(lower(rdataOf(direct, 'TLSA')).sort(), direct.raw).toEqual(
        [rdata(foreign1), rdata(ours1)].sort(),
      );

      const r = await viaUnbound(ZONE1, OWNER1, 'TLSA');
      expect(r.rcode, r.raw).toBe('NOERROR');
      expect(r.flags, r.raw).toContain('ad');
      expect(lower(rdataOf(r, 'TLSA')).sort(), r.raw).toEqual(
        [rdata(foreign1), rdata(ours1)].sort(),
      );
      expect(
        r.records.some((a) => a.type === 'RRSIG' && a.rdata.startsWith('TLSA ')),
        r.raw,
      ).toBe(true);
      expect(r.records.filter((a) => a.type === 'TLSA').every((a) => a.ttl <= TTL)).toBe(true);

      const a = await viaUnbound(ZONE1, `mx.${ZONE1}`, 'A');
      expect(a.rcode, a.raw).toBe('NOERROR');
      expect(a.flags, a.raw).toContain('ad');
      expect(rdataOf(a, 'A'), a.raw).toEqual(['127.0.0.1']);
    });

    it('scenario 2: a record written to an $INCLUDEd fragment is served by Knot and validated by unbound (AD)', async () => {
      // The provider sees only its fragment: the foreign record lives in the zone file.
      expect(await provider2.list(OWNER2)).toEqual([]);
      await provider2.apply(OWNER2, { add: [ours2], remove: [] }, TTL);

      expect(readFileSync(fragmentPath, 'utf8')).toBe(
        `${fragmentText}${OWNER2} ${TTL} IN TLSA ${rdata(ours2)} ; tlsa:managed\n`,
      );
      expect(readFileSync(knot.zoneFiles[ZONE2]!, 'utf8')).toBe(zone2Text);

      await provider2.flush!();

      const r = await viaUnbound(ZONE2, OWNER2, 'TLSA');
      expect(r.rcode, r.raw).toBe('NOERROR');
      expect(r.flags, r.raw).toContain('ad');
      expect(lower(rdataOf(r, 'TLSA')).sort(), r.raw).toEqual(
        [rdata(foreign2), rdata(ours2)].sort(),
      );
      expect(
        r.records.some((a) => a.type === 'RRSIG' && a.rdata.startsWith('TLSA ')),
        r.raw,
      ).toBe(true);

      const a = await viaUnbound(ZONE2, `mx.${ZONE2}`, 'A');
      expect(a.rcode, a.raw).toBe('NOERROR');
      expect(a.flags, a.raw).toContain('ad');
    });

    it('scenario 3: removing our record takes it out of Knot, the foreign record stays', async () => {
      for (const [provider, zone, owner, ours, foreign] of [
        [provider1, ZONE1, OWNER1, ours1, foreign1],
        [provider2, ZONE2, OWNER2, ours2, foreign2],
      ] as const) {
        await provider.apply(owner, { add: [], remove: [ours] }, TTL);
        await provider.flush!();

        const direct = await viaKnot(owner, 'TLSA');
        expect(direct.rcode, direct.raw).toBe('NOERROR');
        expect(direct.flags, direct.raw).toContain('aa');
        expect(lower(rdataOf(direct, 'TLSA')), direct.raw).toEqual([rdata(foreign)]);

        const r = await viaUnbound(zone, owner, 'TLSA');
        expect(r.rcode, r.raw).toBe('NOERROR');
        expect(r.flags, r.raw).toContain('ad');
        expect(lower(rdataOf(r, 'TLSA')), r.raw).toEqual([rdata(foreign)]);
      }
      // The files are back to what the operator wrote.
      expect(readFileSync(knot.zoneFiles[ZONE1]!, 'utf8')).toBe(zone1Text);
      expect(readFileSync(fragmentPath, 'utf8')).toBe(fragmentText);
      expect(await provider1.list(OWNER1)).toEqual([foreign1]);
      expect(await provider2.list(OWNER2)).toEqual([]);
    });

    it('scenario 4: parenthesised SOA and TLSA, an $INCLUDE, a serial bump: Knot loads the written zone and serves the new serial', async () => {
      const soaSerial = async (): Promise<number> => {
        const r = await viaKnot(ZONE3, 'SOA');
        expect(r.rcode, r.raw).toBe('NOERROR');
        return Number(rdataOf(r, 'SOA')[0]!.split(/\s+/)[2]);
      };
      expect(await soaSerial()).toBe(2024010101);
      // The provider reads the record spread over lines and the one in the include.
      expect(await provider3.list(OWNER3)).toEqual([spread3, included3]);

      const day = new Date();
      await provider3.apply(OWNER3, { add: [included3, ours3], remove: [] }, TTL);
      const written = readFileSync(knot.zoneFiles[ZONE3]!, 'utf8');
      const serial = `${day.toISOString().slice(0, 10).replaceAll('-', '')}00`;
      // Only the serial's digits changed; the included record was not written again.
      expect(written).toBe(
        `${zone3Text.replace('2024010101', serial)}${OWNER3} ${TTL} IN TLSA ${rdata(ours3)} ; tlsa:managed\n`,
      );
      expect(readFileSync(join(dir, `${ZONE3}inc`), 'utf8')).toBe(include3Text);

      await provider3.flush!();
      expect(await soaSerial()).toBe(Number(serial));
      const direct = await viaKnot(OWNER3, 'TLSA');
      expect(direct.flags, direct.raw).toContain('aa');
      expect(lower(rdataOf(direct, 'TLSA')).sort(), direct.raw).toEqual(
        [rdata(spread3), rdata(included3), rdata(ours3)].sort(),
      );

      // Removing ours bumps again, and Knot serves the file's new serial with the record gone.
      await provider3.apply(OWNER3, { add: [], remove: [ours3] }, TTL);
      await provider3.flush!();
      expect(await soaSerial()).toBe(Number(serial) + 1);
      expect(lower(rdataOf(await viaKnot(OWNER3, 'TLSA'), 'TLSA')).sort()).toEqual(
        [rdata(spread3), rdata(included3)].sort(),
      );
      expect(readFileSync(knot.zoneFiles[ZONE3]!, 'utf8')).toBe(
        zone3Text.replace('2024010101', String(Number(serial) + 1)),
      );
    });

    it('scenario 5: TXT for ACME DNS-01: Knot loads what the provider wrote and serves it signed; removal restores the file', async () => {
      const owner = `_acme-challenge.mx.${ZONE1}`;
      const digest = createHash('sha256').update(randomBytes(32)).digest('base64url');
      const odd = 'say "hi" \\ then; (go) — café';
      const txt = provider1.txt!;
      await txt.add(owner, [digest, odd], TTL);
      await txt.flush!();
      const direct = await viaKnot(owner, 'TXT');
      expect(direct.flags, direct.raw).toContain('aa');
      expect(
        rdataOf(direct, 'TXT')
          .map((t) => readTxtText(t))
          .sort(),
        direct.raw,
      ).toEqual([digest, odd].sort());
      const r = await viaUnbound(ZONE1, owner, 'TXT');
      expect(r.flags, r.raw).toContain('ad');
      expect(
        rdataOf(r, 'TXT')
          .map((t) => readTxtText(t))
          .sort(),
        r.raw,
      ).toEqual([digest, odd].sort());
      await txt.remove(owner, [digest, odd]);
      await txt.flush!();
      expect(rdataOf(await viaKnot(owner, 'TXT'), 'TXT')).toEqual([]);
      expect(readFileSync(knot.zoneFiles[ZONE1]!, 'utf8')).toBe(zone1Text);
    });
  },
);
