import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createProvider, MANAGED_MARK } from '../../providers/zonefile.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (s: string, usage: 2 | 3 = 3): TlsaRecord => ({ owner, usage, selector: 1, matching: 1, data: h(s) });

function setup(initial?: string, reload?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-'));
  const path = join(dir, 'zone.db');
  if (initial !== undefined) writeFileSync(path, initial);
  const p = createProvider({ path, ...(reload ? { reload } : {}) }, { instance: 't', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) });
  return { dir, path, p };
}

describe('zonefile provider', () => {
  it('adds to an empty (missing) file and lists it back', async () => {
    const { path, p } = setup();
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(`${owner} 300 IN TLSA 3 1 1 ${h('a')} ${MANAGED_MARK}\n`);
    expect(await p.list(owner)).toEqual([rec('a')]);
    expect(await p.list('_443._tcp.mx.example.org.')).toEqual([]);
  });

  it('keeps every line it does not own, byte for byte, and never removes a foreign record', async () => {
    const zone = [
      '$ORIGIN example.org.',
      '$TTL 300',
      '@ IN SOA ns1 hostmaster ( 1 3600 600 86400 300 ) ; the SOA',
      '  IN NS ns1',
      `_25._tcp.mx IN TLSA 3 1 1 ${h('foreign')}`,
      `_25._tcp.mx.example.org. 60 IN TLSA DANE-TA SPKI SHA2-256 ${h('foreign2')}`,
      '',
    ].join('\n');
    const { path, p } = setup(zone);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('foreign'), h('foreign2')]);
    await p.apply(owner, { add: [rec('ours')], remove: [] }, 300);
    // Asked to remove a foreign record: it is not ours, it stays.
    await p.apply(owner, { add: [], remove: [rec('foreign')] }, 300);
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith(zone)).toBe(true);
    expect(text.slice(zone.length)).toBe(`${owner} 300 IN TLSA 3 1 1 ${h('ours')} ${MANAGED_MARK}\n`);
    await p.apply(owner, { add: [], remove: [rec('ours')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(zone);
  });

  it('removes one of three and is idempotent on what is already gone', async () => {
    const { p } = setup();
    await p.apply(owner, { add: [rec('1'), rec('2'), rec('3')], remove: [] }, 300);
    await p.apply(owner, { add: [], remove: [rec('2')] }, 300);
    await p.apply(owner, { add: [], remove: [rec('2')] }, 300);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('1'), h('3')]);
  });

  it('runs the reload command once per flush and retries it after a failure', async () => {
    const { dir, p } = setup(undefined, 'echo x >> reloads; test -e ok');
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    await expect(p.flush!()).rejects.toThrow(/reload command .* exited with 1.*retried on the next run/);
    writeFileSync(join(dir, 'ok'), '');
    await p.flush!();
    await p.flush!(); // nothing pending: no reload
    expect(readFileSync(join(dir, 'reloads'), 'utf8')).toBe('x\nx\n');
    expect(existsSync(join(dir, 'zone.db.reload-pending'))).toBe(false);
  });

  it('reports an unparsable TLSA line with file and line', async () => {
    const { path, p } = setup(`${owner} 300 IN TLSA 3 1 1 nothex\n`);
    await expect(p.list(owner)).rejects.toThrow(`${path}:1: TLSA association data is not hex`);
  });

  it('reads a zone without $ORIGIN (the server supplies it) and uses the origin option for relative names', async () => {
    const zone = `@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 300\n_25._tcp.mx 1h IN TLSA 3 1 1 ${h('rel')}\n`;
    const { p } = setup(zone);
    // The SOA "@" is fine without an origin; a relative TLSA name needs one and says how to give it.
    await expect(p.list(owner)).rejects.toThrow(/zone\.db:2: relative name "_25\._tcp\.mx" without an \$ORIGIN \(set the provider option "origin"/);
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-'));
    writeFileSync(join(dir, 'z'), zone);
    const withOrigin = createProvider({ path: 'z', origin: 'example.org' }, { instance: 't', baseDir: dir, optionError: (k, m) => new Error(m) });
    expect(await withOrigin.list(owner)).toEqual([rec('rel')]);
  });

  it('does not let a bracket inside a quoted string swallow the next line', async () => {
    const { path, p } = setup('x.example.org. 300 IN TXT "a ( b"\n');
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(await p.list(owner)).toEqual([rec('a')]);
    await p.apply(owner, { add: [], remove: [rec('a')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe('x.example.org. 300 IN TXT "a ( b"\n');
  });

  it('needs a path', () => {
    expect(() => createProvider({}, { instance: 't', baseDir: '/', optionError: (k, m) => new Error(`${k}: ${m}`) })).toThrow(/path: zonefile needs "path"/);
  });
});
