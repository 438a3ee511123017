/** The SOA serial of a zone file tlsa writes: RFC 1982 arithmetic and the `serial:` policies. */
import { InputError } from '../src/errors.js';
import type { Entry } from './zonefile-parse.js';

export type SerialPolicy = 'keep' | 'increment' | 'unixtime' | 'dateserial';
export const SERIAL_POLICIES: readonly SerialPolicy[] = [
  'keep',
  'increment',
  'unixtime',
  'dateserial',
];

const SERIAL_SPACE = 2 ** 32;

/** RFC 1982 serial number arithmetic: is a after b? */
function serialAfter(a: number, b: number): boolean {
  return a !== b && ((a > b && a - b < 2 ** 31) || (a < b && b - a > 2 ** 31));
}

/** The next SOA serial under a policy; always after `current` in RFC 1982 terms. */
export function nextSerial(
  current: number,
  policy: Exclude<SerialPolicy, 'keep'>,
  now: Date,
): number {
  const increment = (current + 1) % SERIAL_SPACE;
  let candidate = increment;
  if (policy === 'unixtime') candidate = Math.floor(now.getTime() / 1000) % SERIAL_SPACE;
  if (policy === 'dateserial') {
    const day = now.getUTCFullYear() * 10000 + (now.getUTCMonth() + 1) * 100 + now.getUTCDate();
    candidate = day * 100;
  }
  return serialAfter(candidate, current) ? candidate : increment;
}

/** Replace the SOA serial of `entry` in place (its other characters stay). */
export function bumpSerial(
  entry: Entry,
  policy: Exclude<SerialPolicy, 'keep'>,
  now: Date,
  file: string,
): Entry {
  const soa = entry.soa!;
  if (!/^\d+$/.test(soa.serial) || Number(soa.serial) >= SERIAL_SPACE) {
    throw new InputError(
      `the SOA serial "${soa.serial}" is not a number from 0 to 4294967295`,
      file,
      entry.line + soa.lineOffset,
    );
  }
  const next = String(nextSerial(Number(soa.serial), policy, now));
  const lines = [...entry.lines];
  const line = lines[soa.lineOffset]!;
  lines[soa.lineOffset] = `${line.slice(0, soa.start)}${next}${line.slice(soa.end)}`;
  return { ...entry, lines, soa: { ...soa, serial: next, end: soa.start + next.length } };
}
