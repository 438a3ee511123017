import { describe, expect, it } from 'vitest';
import {
  newSerialOf,
  ownSerial,
  serialRisesOnEveryWrite,
} from '../../providers/powerdns-serials.js';

const NOW = Date.UTC(2026, 11, 1, 23, 30); // 2026-12-01 23:30 UTC

describe('powerdns serials: what our own PATCHes explain', () => {
  it('INCREASE: one more per PATCH, nothing else', () => {
    expect(ownSerial('INCREASE', 41, [42], NOW)).toBe(42);
    expect(ownSerial('increase', 41, [42, 43], NOW)).toBe(43);
    expect(ownSerial('INCREASE', 41, [43], NOW)).toBeUndefined(); // another write before ours
    expect(ownSerial('INCREASE', 41, [42, 44], NOW)).toBeUndefined(); // one between ours
    expect(ownSerial('INCREASE', 0xffff_ffff, [0], NOW)).toBe(0); // 32-bit wrap, as PowerDNS's
  });

  it("DEFAULT: one more, or the jump to the day's first serial (server's local date within a day of ours)", () => {
    expect(ownSerial('DEFAULT', 2026120103, [2026120104], NOW)).toBe(2026120104);
    expect(ownSerial('DEFAULT', 2026113007, [2026120101], NOW)).toBe(2026120101);
    expect(ownSerial('DEFAULT', 2026113007, [2026120201], NOW)).toBe(2026120201); // east of UTC
    expect(ownSerial('DEFAULT', 2026113007, [2026113001], NOW)).toBeUndefined(); // not higher
    expect(ownSerial('DEFAULT', 5, [2026113001], NOW)).toBe(2026113001); // west of UTC
    expect(ownSerial('DEFAULT', 5, [2026112901], NOW)).toBeUndefined(); // two days off
    // Another write of the day came first: ours is the day's second serial.
    expect(ownSerial('DEFAULT', 2026113007, [2026120102], NOW)).toBeUndefined();
    expect(ownSerial('DEFAULT', 2026113007, [2026120101, 2026120102], NOW)).toBe(2026120102);
    expect(ownSerial('DEFAULT', 2026113007, [2026120101, 2026120103], NOW)).toBeUndefined();
  });

  it('SOA-EDIT-INCREASE: one more only (a SOA-EDIT jump is read back)', () => {
    expect(ownSerial('SOA-EDIT-INCREASE', 7, [8], NOW)).toBe(8);
    expect(ownSerial('SOA-EDIT-INCREASE', 7, [2026120101], NOW)).toBeUndefined();
  });

  it('kinds that may leave the serial where another write left it explain nothing', () => {
    for (const kind of ['EPOCH', 'SOA-EDIT', 'NONE', '', 'INCEPTION-INCREMENT', undefined]) {
      expect(serialRisesOnEveryWrite(kind), String(kind)).toBe(false);
      expect(ownSerial(kind, 41, [42], NOW), String(kind)).toBeUndefined();
    }
    for (const kind of ['DEFAULT', 'default', 'INCREASE', 'SOA-EDIT-INCREASE'])
      expect(serialRisesOnEveryWrite(kind), kind).toBe(true);
  });

  it('without the serial before, or a PATCH without its new serial, nothing is explained', () => {
    expect(ownSerial('DEFAULT', undefined, [42], NOW)).toBeUndefined();
    expect(ownSerial('DEFAULT', 41, [], NOW)).toBeUndefined();
    expect(ownSerial('DEFAULT', 41, [undefined], NOW)).toBeUndefined();
    expect(ownSerial('DEFAULT', 41, [42, undefined], NOW)).toBeUndefined();
  });

  it('reads X-PDNS-New-Serial as an unsigned 32-bit number, or not at all', () => {
    const h = (v: string | null) => ({
      get: (n: string) => (n === 'x-pdns-new-serial' ? v : null),
    });
    expect(newSerialOf(h('2026120102'))).toBe(2026120102);
    expect(newSerialOf(h('4294967295'))).toBe(4294967295);
    for (const bad of [null, '', '-1', '4294967296', '1e3', ' 12', '12345678901'])
      expect(newSerialOf(h(bad)), String(bad)).toBeUndefined();
  });
});
