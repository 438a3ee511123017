/** The zonefile provider's TXT records (ACME DNS-01) in zone files laid out as people write
 *  them: every foreign byte stays, the lines tlsa writes parse back (with tlsa's parser and
 *  with ldns-read-zone), the lock, the serial and the reload work as for TLSA. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TxtRecords } from '../../providers/contract.js';
import { createProvider, MANAGED_MARK, parseZone } from '../../providers/zonefile.js';

const owner = '_acme-challenge.mx.example.org.';
const v = (s: string) => createHash('sha256').update(s).digest('base64url');

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function setup(initial: string, extra: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-txt-'));
  made.push(dir);
  const path = join(dir, 'zone.db');
  writeFileSync(path, initial);
  const make = () =>
    createProvider(
      { path, ...extra },
      { instance: 't', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
    );
  const p = make();
  return { dir, path, make, txt: p.txt as TxtRecords };
}

/** A zone as people write them: SOA across parentheses with comments, relative names, an
 *  upper-case owner, TXT records split into strings, across lines, with escapes and bare
 *  words, a TXT whose bytes are Latin-1 (not UTF-8), and a TXT at another name. */
const zone = [
  '$ORIGIN example.org.',
  '$TTL 1h',
  '@ IN SOA ns1 hostmaster ( ; a comment with a ) in it',
  '        41 ; serial',
  '        3600 600 86400 300 )',
  '  IN NS ns1',
  '_ACME-challenge.MX 120 IN TXT "v=spf1 " "-all" ; two strings',
  '_acme-challenge.mx IN TXT ( "quote \\" semi\\059colon" ; across lines',
  '    "caf\\195\\169" )',
  '                   IN TXT bare words',
  '_acme-challenge.www IN TXT "elsewhere"',
  '',
].join('\n');
const foreign = ['v=spf1 -all', 'quote " semi;coloncafé', 'barewords'];

describe('zonefile TXT', () => {
  it('reads TXT however it is written', async () => {
    const { txt } = setup(zone);
    expect(await txt.list(owner)).toEqual(foreign);
    expect(await txt.list('_acme-challenge.www.example.org')).toEqual(['elsewhere']);
  });

  it('adds and removes its own lines; every other byte stays, the serial goes up with each change', async () => {
    const { path, txt } = setup(zone, { serial: 'increment' });
    const [a, b] = [v('a'), v('b')];
    await txt.add(owner, [a, b], 300);
    const text = readFileSync(path, 'utf8');
    // The RRset keeps one TTL: the new lines take the TTL of the TXT lines there (120).
    expect(text).toBe(
      `${zone.replace('41 ; serial', '42 ; serial')}${owner} 120 IN TXT "${a}" ${MANAGED_MARK}\n${owner} 120 IN TXT "${b}" ${MANAGED_MARK}\n`,
    );
    expect(await txt.list(owner)).toEqual([...foreign, a, b]);
    // Adding what is there changes nothing, not even the serial.
    await txt.add(owner, [a], 300);
    expect(readFileSync(path, 'utf8')).toBe(text);
    await txt.remove(owner, [a, b, v('never')]);
    expect(readFileSync(path, 'utf8')).toBe(zone.replace('41 ; serial', '43 ; serial'));
  });

  it('what it writes parses back, with its own parser and with ldns-read-zone', async () => {
    const { path, txt } = setup(zone);
    const odd = 'say "hi" \\ then; (go) — café';
    const long = `k=${'x'.repeat(300)}`;
    await txt.add(owner, [odd, long], 300);
    const entries = parseZone(readFileSync(path, 'latin1'), path);
    expect(entries.filter((e) => e.managed).map((e) => e.txt)).toEqual([odd, long]);
    const ldns = execFileSync('ldns-read-zone', [path], { encoding: 'utf8' });
    const ours = ldns.split('\n').filter((l) => l.includes('"k=') || l.includes('say'));
    expect(ours).toHaveLength(2);
    // ldns splits nothing it need not: the long value is two strings of at most 255 bytes.
    expect(ours.find((l) => l.includes('"k='))).toMatch(/"k=x{253}" "x{47}"/);
  });

  it('a removed line leaves the lines after it that inherited its owner with that owner', async () => {
    const { path, txt } = setup('$ORIGIN example.org.\n');
    const a = v('a');
    await txt.add(owner, [a], 300);
    // Someone appends records that inherit the owner of tlsa's line (they start with a blank).
    writeFileSync(path, `${readFileSync(path, 'utf8')}\tIN TXT "hand-made"\n  IN A 192.0.2.1\n`);
    await txt.remove(owner, [a]);
    expect(readFileSync(path, 'utf8')).toBe(
      `$ORIGIN example.org.\n${owner}\tIN TXT "hand-made"\n  IN A 192.0.2.1\n`,
    );
    expect(await txt.list(owner)).toEqual(['hand-made']);
  });

  it('removes the line it wrote, not an identical hand-made one', async () => {
    const a = v('twin');
    const hand = `_acme-challenge.mx.example.org. 60 IN TXT "${a}"\n`;
    const { path, txt } = setup(`${hand}${owner} 60 IN TXT "${a}" ${MANAGED_MARK}\n`);
    await txt.remove(owner, [a]);
    expect(readFileSync(path, 'utf8')).toBe(hand);
  });

  it('sees values in $INCLUDEd files and adds none again; refuses a CNAME, naming its file', async () => {
    const { dir, path, txt } = setup('$ORIGIN example.org.\n$INCLUDE inc/acme.inc\n');
    mkdirSync(join(dir, 'inc'));
    writeFileSync(join(dir, 'inc', 'acme.inc'), `_acme-challenge.mx IN TXT "${v('inc')}"\n`);
    const before = readFileSync(path, 'utf8');
    await txt.add(owner, [v('inc')], 300);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(await txt.list(owner)).toEqual([v('inc')]);
    writeFileSync(join(dir, 'inc', 'acme.inc'), '_acme-challenge.mx IN CNAME elsewhere.net.\n');
    const err = await txt.add(owner, [v('x')], 300).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(new RegExp(`${owner} has a CNAME in .*acme\\.inc`));
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('marks the reload pending and flush() runs it; two writers at once both land (the file lock)', async () => {
    const { dir, path, make } = setup('$ORIGIN example.org.\n', { reload: 'echo x >> reloads' });
    const [one, two] = [make().txt!, make().txt!];
    await Promise.all([one.add(owner, [v('1')], 300), two.add(owner, [v('2')], 300)]);
    expect((await one.list(owner)).sort()).toEqual([v('1'), v('2')].sort());
    expect(existsSync(`${path}.reload-pending`)).toBe(true);
    await one.flush!();
    await one.flush!();
    expect(readFileSync(join(dir, 'reloads'), 'utf8')).toBe('x\n');
  });

  it('a file it cannot parse is exit 2 and stays as it was', async () => {
    const bad = '$ORIGIN example.org.\n_acme-challenge.mx IN TXT "open\n';
    const { path, txt } = setup(bad);
    const err = await txt.add(owner, [v('a')], 300).then(
      () => undefined,
      (e: Error & { exitCode?: number }) => e,
    );
    expect((err as { exitCode?: number })?.exitCode).toBe(2);
    expect(err!.message).toMatch(/unterminated quoted string/);
    expect(readFileSync(path, 'utf8')).toBe(bad);
  });
});
