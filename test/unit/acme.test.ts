/** The pure parts of built-in ACME: the ARI certificate id (RFC 9773 §4.1), the renewal time,
 *  profile selection and the next-key rule. */
import { afterAll, describe, expect, it } from 'vitest';
import { ariCertId, ariCertIdOf, serialDerBytes } from '../../src/acme/ari-id.js';
import { renewalKey } from '../../src/acme/next-key.js';
import { selectProfile } from '../../src/acme/profile.js';
import {
  isDue,
  lifetimeRenewal,
  pollDelaySeconds,
  renewalTime,
  windowFraction,
} from '../../src/acme/renewal-time.js';
import { InputError } from '../../src/errors.js';
import { makeCa, makeLeaf, makeTempDir, openssl, removeTempDir } from '../helpers/pki.js';

const DAY = 86_400_000;

describe('ARI certificate id (RFC 9773 §4.1)', () => {
  it('matches the RFC example', () => {
    // RFC 9773 §4.1: keyIdentifier 69:88:5B:…:C8:D4, serial 00:87:65:43:21.
    expect(
      ariCertId('69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4', '00:87:65:43:21'),
    ).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('encodes the serial as its DER INTEGER content (leading zero for a set top bit)', () => {
    expect(serialDerBytes('876543').toString('hex')).toBe('00876543');
    expect(serialDerBytes('0000123').toString('hex')).toBe('0123');
    expect(serialDerBytes('7f').toString('hex')).toBe('7f');
  });

  const dir = makeTempDir('tlsa-ari-');
  afterAll(() => removeTempDir(dir));
  it('reads the AKI and serial of a real certificate (as openssl shows them)', () => {
    const root = makeCa(dir, { name: 'ARI Root', key: 'p256' });
    const leaf = makeLeaf(dir, { ca: root, cn: 'mx.example.org', key: 'p256' });
    const text = openssl([
      'x509',
      '-in',
      leaf.certPath,
      '-noout',
      '-ext',
      'authorityKeyIdentifier',
      '-serial',
    ]);
    const aki = /keyid:([0-9A-F:]+)|\n\s+([0-9A-F:]{20,})/.exec(text)!;
    const serial = /serial=([0-9A-F]+)/.exec(text)![1]!;
    expect(ariCertIdOf(leaf.certPem)).toBe(ariCertId((aki[1] ?? aki[2])!, serial));
  });
});

describe('renewal time', () => {
  const notBefore = new Date('2026-01-01T00:00:00Z');
  it('without ARI: two thirds of the lifetime', () => {
    const notAfter = new Date(notBefore.getTime() + 90 * DAY);
    expect(lifetimeRenewal(notBefore, notAfter)).toEqual(new Date(notBefore.getTime() + 60 * DAY));
    const d = renewalTime({ notBefore, notAfter, now: notBefore });
    expect(d.source).toBe('lifetime');
    expect(isDue(d, new Date(notBefore.getTime() + 59 * DAY))).toBe(false);
    expect(isDue(d, new Date(notBefore.getTime() + 60 * DAY))).toBe(true);
  });

  it('without ARI: one half for certificates of ten days or less', () => {
    const six = new Date(notBefore.getTime() + 6 * DAY);
    expect(lifetimeRenewal(notBefore, six)).toEqual(new Date(notBefore.getTime() + 3 * DAY));
    const ten = new Date(notBefore.getTime() + 10 * DAY);
    expect(lifetimeRenewal(notBefore, ten)).toEqual(new Date(notBefore.getTime() + 5 * DAY));
  });

  it('with ARI: a time inside the window, fixed per certificate, and the next poll', () => {
    const notAfter = new Date(notBefore.getTime() + 90 * DAY);
    const window = {
      start: new Date(notBefore.getTime() + 50 * DAY),
      end: new Date(notBefore.getTime() + 52 * DAY),
    };
    const now = notBefore;
    const fraction = windowFraction('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
    expect(fraction).toBeGreaterThanOrEqual(0);
    expect(fraction).toBeLessThan(1);
    expect(windowFraction('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE')).toBe(fraction);
    const d = renewalTime({
      notBefore,
      notAfter,
      now,
      ari: { window, fraction, retryAfterS: 3600 },
    });
    expect(d.source).toBe('ari');
    expect(d.at.getTime()).toBeGreaterThanOrEqual(window.start.getTime());
    expect(d.at.getTime()).toBeLessThanOrEqual(window.end.getTime());
    expect(d.nextPollAt).toEqual(new Date(now.getTime() + 3600_000));
    expect(renewalTime({ notBefore, notAfter, now, ari: { window, fraction: 0 } }).at).toEqual(
      window.start,
    );
  });

  it('with ARI: a window in the past means now', () => {
    const notAfter = new Date(notBefore.getTime() + 90 * DAY);
    const now = new Date(notBefore.getTime() + 10 * DAY);
    const window = { start: notBefore, end: new Date(notBefore.getTime() + DAY) };
    expect(renewalTime({ notBefore, notAfter, now, ari: { window, fraction: 0.5 } }).at).toEqual(
      now,
    );
  });

  it('Retry-After is bounded to one minute .. one day, six hours when absent', () => {
    expect(pollDelaySeconds(undefined)).toBe(21_600);
    expect(pollDelaySeconds(5)).toBe(60);
    expect(pollDelaySeconds(10 * 86_400)).toBe(86_400);
    expect(pollDelaySeconds(7200)).toBe(7200);
  });
});

describe('profile selection', () => {
  const meta = { profiles: { classic: 'x', tlsserver: 'y', shortlived: 'z' } };
  it('sends an offered profile, nothing when none is configured', () => {
    expect(selectProfile('tlsserver', meta, 'https://ca/dir')).toBe('tlsserver');
    expect(selectProfile(undefined, undefined, 'https://ca/dir')).toBeUndefined();
  });
  it('refuses a profile the directory does not offer, naming the offered ones (exit 2)', () => {
    const e = (() => {
      try {
        selectProfile('bogus', meta, 'https://ca/dir');
      } catch (err) {
        return err as InputError;
      }
    })();
    expect(e).toBeInstanceOf(InputError);
    expect(e!.exitCode).toBe(2);
    expect(e!.message).toContain('classic, tlsserver, shortlived');
    expect(() => selectProfile('tlsserver', {}, 'https://ca/dir')).toThrow(/offers no profiles/);
  });
});

describe('next-key rule', () => {
  it('uses the next key only when its 3 1 1 record is live', () => {
    expect(renewalKey('aa', () => true)).toEqual({ use: 'next' });
    expect(renewalKey('aa', () => false)).toEqual({
      use: 'fresh',
      reason: 'next key record not live',
    });
    expect(renewalKey(undefined, () => true)).toEqual({ use: 'fresh', reason: 'no next key' });
  });
});
