/**
 * Exit codes are a contract (0 ok, 1 check failed/unsafe, 2 bad input, 3 provider or network,
 * 4 wait): every error class the code exports carries its `exitCode`, and the CLI's fail() maps
 * by that field alone. Anything without one is an internal error (a bug).
 *
 * The classes are found by reading the sources, so a new error class without a sample here
 * (and so without a decided exit code) fails this test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fail } from '../../src/cli/fail.js';
import { EXIT, NetworkError, exitCodeOf } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/cli.js';

const server = { host: '127.0.0.1', port: 5353 };

/** Constructor arguments and the exit code each error class stands for. */
const SAMPLES: Record<string, { args: unknown[]; code: number }> = {
  InputError: { args: ['bad value', 'config.yaml', 3], code: EXIT.badInput },
  PostconfError: { args: ['postconf failed'], code: EXIT.badInput },
  PolicyError: { args: ['usage 0 is refused for SMTP'], code: EXIT.badInput },
  HostError: { args: ['an IP address is not a host name'], code: EXIT.badInput },
  InputFileError: {
    args: ['the chain', 'it is a FIFO (named pipe), not a regular file', '/tmp/chain.pem'],
    code: EXIT.badInput,
  },
  WaitError: { args: ['another run holds the lock'], code: EXIT.wait },
  UnsafeError: { args: ['a served chain would lose its record'], code: EXIT.checkFailed },
  NetworkError: {
    args: ['the resolver does not answer', 'set verify.resolver'],
    code: EXIT.provider,
  },
  ProviderError: { args: ['local', 'write failed'], code: EXIT.provider },
  Transient: { args: ['HTTP 503'], code: EXIT.provider },
  HttpFailure: { args: [400, ['Bad request']], code: EXIT.provider },
  Conflict: { args: ['the RRset changed'], code: EXIT.provider },
  NotFound: { args: ['no such zone'], code: EXIT.provider },
  Rejected: { args: [422, 'bad record'], code: EXIT.provider },
  DnsTransportError: { args: ['no answer from 127.0.0.1 port 53'], code: EXIT.provider },
  ProbeFailure: { args: ['timeout', 'timed out'], code: EXIT.provider },
  DnsError: { args: ['no response', server, 'x.example.', 'A'], code: EXIT.provider },
  DnsTimeoutError: { args: [server, 'x.example.', 'A', 3, 2000, 'udp'], code: EXIT.provider },
  DnsNetworkError: {
    args: [server, 'x.example.', 'A', 'ECONNREFUSED', 'connection refused', 'udp'],
    code: EXIT.provider,
  },
  DnsFormatError: { args: [server, 'x.example.', 'A', 'cannot decode'], code: EXIT.provider },
  RateLimitedError: {
    args: ['acme(mx)', new Date('2026-12-02T00:00:00Z'), 'too many certificates'],
    code: EXIT.provider,
  },
  ZoneDiscoveryError: {
    args: [server, 'x.example.', 'SOA', 'cannot find the zone'],
    code: EXIT.provider,
  },
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every exported class that extends something, with its module. */
async function exportedErrorClasses(): Promise<
  { name: string; file: string; ctor: new (...a: unknown[]) => Error }[]
> {
  const files = [
    ...sources(join(REPO_ROOT, 'src')),
    ...sources(join(REPO_ROOT, 'providers')),
  ].filter((f) => /^export class \w+ extends /m.test(readFileSync(f, 'utf8')));
  const out: { name: string; file: string; ctor: new (...a: unknown[]) => Error }[] = [];
  for (const file of files) {
    const mod = (await import(file)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value === 'function' && value.prototype instanceof Error) {
        out.push({
          name,
          file: relative(REPO_ROOT, file),
          ctor: value as new (...a: unknown[]) => Error,
        });
      }
    }
  }
  return out;
}

describe('error classes', () => {
  let written = '';
  afterEach(() => {
    vi.restoreAllMocks();
    written = '';
  });
  const captureStderr = () =>
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written += String(chunk);
      return true;
    });

  it('every exported error class carries the exit code it stands for, and fail() maps by it', async () => {
    const classes = await exportedErrorClasses();
    expect(classes.length).toBeGreaterThanOrEqual(Object.keys(SAMPLES).length);
    for (const { name, file, ctor } of classes) {
      const sample = SAMPLES[name];
      expect(
        sample,
        `${file}: ${name} is an exported error class without a sample here: decide its exit code`,
      ).toBeDefined();
      const e = new ctor(...sample!.args);
      expect((e as { exitCode?: unknown }).exitCode, `${name}.exitCode`).toBe(sample!.code);
      captureStderr();
      expect(fail(e), `fail(${name})`).toBe(sample!.code);
      expect(written, name).not.toMatch(/internal error/);
      expect(written).toContain(e.message);
      vi.restoreAllMocks();
      written = '';
    }
  });

  it('fail() maps by exitCode, not by class or name', () => {
    captureStderr();
    const e = Object.assign(new Error('the resolver is down'), {
      name: 'SomethingNew',
      exitCode: 3,
    });
    expect(fail(e)).toBe(3);
    expect(written).toBe('tlsa: the resolver is down\n');
  });

  it('fail() prints the hint on its own line', () => {
    captureStderr();
    expect(
      fail(
        new NetworkError(
          'no answer from the validating resolver 127.0.0.1:5353',
          'is it running? set verify.resolver',
        ),
      ),
    ).toBe(3);
    expect(written).toBe(
      'tlsa: no answer from the validating resolver 127.0.0.1:5353\n  hint: is it running? set verify.resolver\n',
    );
  });

  it('an error without an exit code (or with one outside the contract) is an internal error, exit 1', () => {
    captureStderr();
    expect(fail(new TypeError('x is undefined'))).toBe(1);
    expect(written).toBe('tlsa: internal error: x is undefined\n');
    written = '';
    expect(fail(Object.assign(new Error('odd'), { exitCode: 66 }))).toBe(1);
    expect(written).toMatch(/^tlsa: internal error: odd/);
    expect(exitCodeOf({ exitCode: 0 })).toBeUndefined();
    expect(exitCodeOf('a string')).toBeUndefined();
  });
});
