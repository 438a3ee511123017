import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createProvider, MANAGED_MARK } from '../../providers/zonefile.js';
import { createProvider as createExec } from '../../providers/exec.js';
import { nextSerial } from '../../providers/zonefile-serial.js';
import { InputError } from '../../src/errors.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data: h(s),
});

// Every directory a test makes goes when the file is done, whatever the test left in it.
const made: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-'));
  made.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

const ctxFor = (dir: string) => ({
  instance: 't',
  baseDir: dir,
  optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
});

function setup(initial?: string, reload?: string, extra: Record<string, unknown> = {}) {
  const dir = tempDir();
  const path = join(dir, 'zone.db');
  if (initial !== undefined) writeFileSync(path, initial);
  const p = createProvider(
    {
      path,
      ...(initial === undefined ? { create: true } : {}),
      ...(reload ? { reload } : {}),
      ...extra,
    },
    ctxFor(dir),
  );
  return { dir, path, p };
}

/** The InputError a promise rejects with (exit 2), as `file:line: message`. */
async function badInput(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(InputError);
  return (e as InputError).located;
}

describe('zonefile provider', () => {
  it('adds to an empty (missing) file and lists it back', async () => {
    const { path, p } = setup();
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(
      `${owner} 300 IN TLSA 3 1 1 ${h('a')} ${MANAGED_MARK}\n`,
    );
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
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith(zone)).toBe(true);
    expect(text.slice(zone.length)).toBe(
      `${owner} 300 IN TLSA 3 1 1 ${h('ours')} ${MANAGED_MARK}\n`,
    );
    await p.apply(owner, { add: [], remove: [rec('ours')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(zone);
  });

  it('removes the line it wrote, not an identical hand-made one; an unmarked line alone goes only when asked (adopted)', async () => {
    const handMade = `_25._tcp.mx.example.org. 60 IN TLSA 3 1 1 ${h('twin')}`;
    const zone = [
      '$ORIGIN example.org.',
      handMade,
      `_25._tcp.mx IN TLSA 3 1 1 ${h('adopted')}`,
      '',
    ].join('\n');
    const { path, p } = setup(`${zone}${owner} 300 IN TLSA 3 1 1 ${h('twin')} ${MANAGED_MARK}\n`);
    await p.apply(owner, { add: [], remove: [rec('twin')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(zone);
    // The engine asks to remove only records its state owns: an unmarked one was taken over by `tlsa adopt`.
    await p.apply(owner, { add: [], remove: [rec('adopted')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(['$ORIGIN example.org.', handMade, ''].join('\n'));
  });

  it('removes one of three and is idempotent on what is already gone', async () => {
    const { p } = setup();
    await p.apply(owner, { add: [rec('1'), rec('2'), rec('3')], remove: [] }, 300);
    await p.apply(owner, { add: [], remove: [rec('2')] }, 300);
    await p.apply(owner, { add: [], remove: [rec('2')] }, 300);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('1'), h('3')]);
  });

  it('a removed line leaves the hand-made lines after it that inherited its owner with that owner', async () => {
    const { path, p } = setup('$ORIGIN example.org.\n');
    await p.apply(owner, { add: [rec('1')], remove: [] }, 300);
    // Someone adds records below tlsa's line that inherit its owner (they start with a blank).
    const hand = `\tIN TLSA 3 1 1 ${h('hand')}\n  IN TXT "kept"\n`;
    writeFileSync(path, `${readFileSync(path, 'utf8')}${hand}`);
    await p.apply(owner, { add: [], remove: [rec('1')] }, 300);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain(`${owner}\tIN TLSA 3 1 1 ${h('hand')}\n  IN TXT "kept"\n`);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('hand')]);
    // An independent parser agrees: both records still sit at the owner.
    const ldns = execFileSync('ldns-read-zone', ['-z', path], { encoding: 'utf8' });
    expect(ldns).toMatch(
      new RegExp(`^${owner.replace(/\./g, '\\.')}\\s.*TLSA\\s+3 1 1 ${h('hand')}`, 'mi'),
    );
    expect(ldns).toMatch(new RegExp(`^${owner.replace(/\./g, '\\.')}\\s.*TXT\\s+"kept"`, 'mi'));
  });

  it('runs the reload command once per flush and retries it after a failure', async () => {
    const { dir, p } = setup(undefined, 'echo x >> reloads; test -e ok');
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    await expect(p.flush!()).rejects.toThrow(
      /reload command .* exited with 1.*retried on the next run/,
    );
    writeFileSync(join(dir, 'ok'), '');
    await p.flush!();
    await p.flush!(); // nothing pending: no reload
    expect(readFileSync(join(dir, 'reloads'), 'utf8')).toBe('x\nx\n');
    expect(existsSync(join(dir, 'zone.db.reload-pending'))).toBe(false);
  });

  it('reports an unparsable TLSA line with file and line', async () => {
    const { path, p } = setup(`${owner} 300 IN TLSA 3 1 1 nothex\n`);
    expect(await badInput(p.list(owner))).toContain(`${path}:1: TLSA association data is not hex`);
  });

  it('reads a zone without $ORIGIN (the server supplies it) and uses the origin option for relative names', async () => {
    const zone = `@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 300\n_25._tcp.mx 1h IN TLSA 3 1 1 ${h('rel')}\n`;
    const { p } = setup(zone);
    // The SOA "@" is fine without an origin; a relative TLSA name needs one and says how to give it.
    expect(await badInput(p.list(owner))).toMatch(
      /zone\.db:2: relative name "_25\._tcp\.mx" without an \$ORIGIN \(.*set the provider option "origin"/,
    );
    const dir = tempDir();
    writeFileSync(join(dir, 'z'), zone);
    const withOrigin = createProvider(
      { path: 'z', origin: 'example.org' },
      { instance: 't', baseDir: dir, optionError: (_k, m) => new Error(m) },
    );
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
    expect(() =>
      createProvider(
        {},
        { instance: 't', baseDir: '/', optionError: (k, m) => new Error(`${k}: ${m}`) },
      ),
    ).toThrow(/path: zonefile needs "path"/);
  });
});

describe('zonefile provider: a zone it cannot parse is refused, untouched', () => {
  const apex = ['$ORIGIN example.org.', '$TTL 300'];
  const cases: [string, string[], number, RegExp][] = [
    [
      'an unbalanced "("',
      [...apex, '@ IN SOA ns1 hostmaster ( 1 3600 600 86400 300', '  IN NS ns1'],
      3,
      /"\(" is never closed/,
    ],
    [
      'a ")" without "("',
      [...apex, '@ IN SOA ns1 hostmaster 1 3600 600 86400 300 )'],
      3,
      /"\)" without an opening "\("/,
    ],
    [
      'an unterminated quoted string',
      [...apex, 'txt IN TXT "open', 'www IN A 192.0.2.1'],
      3,
      /unterminated quoted string/,
    ],
    [
      'nested parentheses',
      [...apex, '@ IN SOA ns1 hostmaster ( 1 ( 3600', ' 600 86400 300 ) )'],
      3,
      /nested "\("/,
    ],
    ['a record without a type', [...apex, 'www 300 IN'], 3, /a record without a type/],
    [
      // The file is split into entries one at a time; what cannot be split anywhere still
      // comes first, as when the whole file was split before any entry was read.
      'a record without a type, then an unterminated quoted string further down',
      [...apex, 'www 300 IN', 'ftp IN A 192.0.2.1', 'txt IN TXT "open'],
      5,
      /unterminated quoted string/,
    ],
  ];
  for (const [what, lines, line, message] of cases) {
    it(`${what}: exit 2 with file:line on list and apply, the file stays as it was`, async () => {
      const zone = `${lines.join('\n')}\n`;
      const { path, p } = setup(zone);
      expect(await badInput(p.list(owner))).toMatch(
        new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}: ${message.source}`),
      );
      for (let run = 0; run < 3; run++) {
        expect(
          await badInput(p.apply(owner, { add: [rec('a'), rec('b', 2)], remove: [] }, 300)),
        ).toMatch(message);
      }
      expect(readFileSync(path, 'utf8')).toBe(zone);
    });
  }
});

describe('zonefile provider: records as RFC 1035 writes them', () => {
  const hexA = h('a');
  const hexB = h('b');
  const hexC = h('c');
  const split = (hex: string) =>
    hex
      .toUpperCase()
      .match(/.{1,16}/g)!
      .join(' ');
  const zone = [
    '$ORIGIN example.org.',
    '$TTL 1h',
    '@ IN SOA ns1 hostmaster ( ; a comment with a ) in it',
    '        2024010101 ; serial',
    '        3600 600 86400 300 )',
    '  IN NS ns1',
    'txt IN TXT "a ( b ; not a comment" ( "more" )',
    '_25._tcp.mx 300 IN TLSA (',
    `    3 1 1 ${split(hexA).slice(0, 40)}`,
    `    ${split(hexA).slice(40)} ) ; spread over lines, upper case, split`,
    `        IN 300 TLSA DANE-TA SPKI SHA2-256 ${hexB} ; owner carried over`,
    '$ORIGIN mx.example.org.',
    `_25._tcp TLSA 3 1 1 ${hexC.slice(0, 20)} ${hexC.slice(20)}`,
    '',
  ].join('\n');

  it('recognises every TLSA record however it is written, and adds none of them again', async () => {
    const { path, p } = setup(zone);
    expect((await p.list(owner)).map((r) => [r.usage, r.data])).toEqual([
      [3, hexA],
      [2, hexB],
      [3, hexC],
    ]);
    // With the TTL they have (the third takes $TTL 1h): nothing to do, not a byte changes.
    await p.apply(owner, { add: [rec('a'), rec('b', 2)], remove: [] }, 300);
    await p.apply(owner, { add: [rec('c')], remove: [] }, 3600);
    expect(readFileSync(path, 'utf8')).toBe(zone);
    // With another TTL than the third's: none is added again; the RRset's TTL becomes 300, so
    // the one line that had another TTL is rewritten with it (the contract's TTL rule), once.
    const retimed = zone.replace(
      `_25._tcp TLSA 3 1 1 ${hexC.slice(0, 20)} ${hexC.slice(20)}`,
      `${owner} 300 IN TLSA 3 1 1 ${hexC}`,
    );
    await p.apply(owner, { add: [rec('a'), rec('b', 2), rec('c')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(retimed);
    await p.apply(owner, { add: [rec('a'), rec('b', 2), rec('c')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(retimed);
    await p.apply(owner, { add: [rec('d')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(
      `${retimed}${owner} 300 IN TLSA 3 1 1 ${h('d')} ${MANAGED_MARK}\n`,
    );
    // A CNAME written with a relative owner is seen too.
    const other = setup(`$ORIGIN example.org.\n_25._tcp.mx IN CNAME elsewhere\n`);
    await expect(other.p.apply(owner, { add: [rec('x')], remove: [] }, 300)).rejects.toThrow(
      /CNAME/,
    );
  });
});

describe('zonefile provider: bytes', () => {
  it('keeps foreign lines byte for byte, whatever their encoding', async () => {
    const dir = tempDir();
    const path = join(dir, 'zone.db');
    const bytes = Buffer.concat([
      Buffer.from('; UTF-8: M\u00fcller\r\n', 'utf8'),
      Buffer.from([
        0x3b, 0x20, 0x4c, 0x61, 0x74, 0x69, 0x6e, 0x2d, 0x31, 0x3a, 0x20, 0x4d, 0xfc, 0x6c, 0x6c,
        0x65, 0x72, 0x0a,
      ]), // "; Latin-1: M\xfcller"
      Buffer.from('www.example.org. IN TXT "caf\u00e9"\n', 'utf8'),
    ]);
    writeFileSync(path, bytes);
    const p = createProvider({ path }, ctxFor(dir));
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    await p.apply(owner, { add: [], remove: [rec('a')] }, 300);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });
});

describe('zonefile provider: $INCLUDE', () => {
  it('reads included files (relative to the zone file, with an origin argument) and never duplicates their records', async () => {
    const { dir, path, p } = setup(
      '$ORIGIN example.org.\n$INCLUDE sub/tlsa.inc mx.example.org.\nwww IN A 192.0.2.1\n',
    );
    mkdirSync(join(dir, 'sub'));
    writeFileSync(
      join(dir, 'sub', 'tlsa.inc'),
      `_25._tcp IN TLSA 3 1 1 ${h('inc')}\n$INCLUDE more.inc\n`,
    );
    writeFileSync(join(dir, 'sub', 'more.inc'), `${owner} IN TLSA 3 1 1 ${h('more')}\n`);
    const before = readFileSync(path, 'utf8');
    // Relative to the zone file's directory, not to the working directory of the run.
    expect(process.cwd()).not.toBe(dir);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('inc'), h('more')]);
    await p.apply(owner, { add: [rec('inc'), rec('more')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(before);
    // A foreign record in an include is not ours to remove.
    await p.apply(owner, { add: [], remove: [rec('inc')] }, 300);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('inc'), h('more')]);
  });

  it('a missing include, a loop, an include that is not a regular file: exit 2 at the directive', async () => {
    const { dir, path, p } = setup(
      '$ORIGIN example.org.\nwww IN A 192.0.2.1\n$INCLUDE missing.inc\n',
    );
    expect(await badInput(p.list(owner))).toMatch(
      new RegExp(`^${path}:3: \\$INCLUDE ${join(dir, 'missing.inc')}: the file does not exist`),
    );
    writeFileSync(path, '$INCLUDE a.inc\n');
    writeFileSync(join(dir, 'a.inc'), '$INCLUDE zone.db\n');
    expect(await badInput(p.list(owner))).toMatch(/a\.inc:1: \$INCLUDE .*zone\.db includes itself/);
    writeFileSync(path, '$INCLUDE sub\n');
    mkdirSync(join(dir, 'sub'));
    expect(await badInput(p.list(owner))).toMatch(/sub is a directory/);
    expect(await badInput(p.apply(owner, { add: [rec('x')], remove: [] }, 300))).toMatch(
      /sub is a directory/,
    );
    expect(readFileSync(path, 'utf8')).toBe('$INCLUDE sub\n');
  });

  it('lines tlsa wrote in an included file (path named it before): exit 2 naming the file to set as path', async () => {
    const { dir, path, p } = setup('$INCLUDE tlsa.inc\n');
    const inc = join(dir, 'tlsa.inc');
    writeFileSync(inc, `; fragment\n${owner} 300 IN TLSA 3 1 1 ${h('old')} ${MANAGED_MARK}\n`);
    expect(await badInput(p.list(owner))).toMatch(
      new RegExp(`^${inc}:2: .*tlsa writes only "path": set path: ${inc}`),
    );
    expect(
      await badInput(p.apply(owner, { add: [rec('old'), rec('new')], remove: [] }, 300)),
    ).toMatch(/set path/);
    expect(readFileSync(path, 'utf8')).toBe('$INCLUDE tlsa.inc\n');
  });
});

describe('zonefile provider: the file itself', () => {
  it('a missing zone file is exit 2 naming the path unless create: true', async () => {
    const dir = tempDir();
    const p = createProvider({ path: 'nope.zone' }, ctxFor(dir));
    expect(await badInput(p.list(owner))).toMatch(
      new RegExp(`^${join(dir, 'nope.zone')}: .*does not exist.*create: true`),
    );
    expect(await badInput(p.apply(owner, { add: [rec('a')], remove: [] }, 300))).toMatch(
      /does not exist/,
    );
    expect(existsSync(join(dir, 'nope.zone'))).toBe(false);
    const created = createProvider({ path: 'nope.zone', create: true }, ctxFor(dir));
    await created.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(await created.list(owner)).toEqual([rec('a')]);
  });

  it('a FIFO, a device or a directory as the zone: exit 2, never a hang', async () => {
    const dir = tempDir();
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    mkdirSync(join(dir, 'dir'));
    symlinkSync('/dev/null', join(dir, 'null'));
    for (const [name, kind] of [
      ['fifo', 'a FIFO'],
      ['dir', 'a directory'],
      ['null', 'a device'],
    ]) {
      const p = createProvider({ path: name, create: true }, ctxFor(dir));
      expect(await badInput(p.list(owner))).toContain(kind);
      expect(await badInput(p.apply(owner, { add: [rec('a')], remove: [] }, 300))).toContain(kind);
    }
    expect(lstatSync(join(dir, 'fifo')).isFIFO()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['dir', 'fifo', 'null']);
  });

  it('a symlinked zone is written through: the target changes, the link stays a link', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'zone.db'), '$ORIGIN example.org.\nwww IN A 192.0.2.1\n');
    symlinkSync('real/zone.db', join(dir, 'link.db'));
    const p = createProvider({ path: 'link.db', reload: 'true' }, ctxFor(dir));
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(lstatSync(join(dir, 'link.db')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, 'link.db'))).toBe('real/zone.db');
    expect(readFileSync(join(dir, 'real', 'zone.db'), 'utf8')).toContain(
      `${h('a')} ${MANAGED_MARK}`,
    );
    // The reload marker sits beside the file really written; no temp file is left behind.
    expect(readdirSync(join(dir, 'real')).sort()).toEqual(['zone.db', 'zone.db.reload-pending']);
    await p.flush!();
    expect(readdirSync(join(dir, 'real'))).toEqual(['zone.db']);
    const dangling = createProvider({ path: 'gone.db', create: true }, ctxFor(dir));
    symlinkSync('real/gone.db', join(dir, 'gone.db'));
    expect(await badInput(dangling.list(owner))).toMatch(
      /symlink to real\/gone\.db, which does not exist/,
    );
  });

  it("keeps the zone file's owner, group and mode (root writing a zone the server owns)", async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip();
    const { path, p } = setup('www.example.org. IN A 192.0.2.1\n');
    chownSync(path, 65534, 65534);
    chmodSync(path, 0o640);
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    const st = statSync(path);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([65534, 65534, 0o640]);
    expect(await p.list(owner)).toEqual([rec('a')]);
  });

  it('never writes through a symlink planted where its temp file goes (O_EXCL)', async () => {
    const { dir, path, p } = setup('www.example.org. IN A 192.0.2.1\n');
    writeFileSync(join(dir, 'victim'), 'precious\n');
    const now = Date.now();
    const spy = vi.spyOn(Date, 'now').mockReturnValue(now);
    try {
      symlinkSync(join(dir, 'victim'), join(dir, `.zone.db.${process.pid}.${now}.tmp`));
      await expect(p.apply(owner, { add: [rec('a')], remove: [] }, 300)).rejects.toThrow(
        /cannot write .*EEXIST/,
      );
    } finally {
      spy.mockRestore();
    }
    expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('precious\n');
    expect(readFileSync(path, 'utf8')).toBe('www.example.org. IN A 192.0.2.1\n');
  });

  it('never writes through a symlink planted where the reload marker goes', async () => {
    const { dir, path, p } = setup('www.example.org. IN A 192.0.2.1\n', 'true');
    writeFileSync(join(dir, 'victim'), 'precious\n');
    symlinkSync(join(dir, 'victim'), `${path}.reload-pending`);
    expect(await badInput(p.apply(owner, { add: [rec('a')], remove: [] }, 300))).toMatch(
      /reload-pending: is a symlink/,
    );
    expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('precious\n');
    expect(readFileSync(path, 'utf8')).toBe('www.example.org. IN A 192.0.2.1\n');
  });
});

describe('zonefile provider: SOA serial', () => {
  const zone = (serial: string) =>
    [
      '$ORIGIN example.org.',
      '@ 300 IN SOA ns1 hostmaster (',
      `\t\t${serial}\t; serial, YYYYMMDDnn`,
      '\t\t3600 600 86400 300 )',
      '',
    ].join('\n');

  it('serial: increment bumps the serial written across parentheses, only its digits, only when the file changes', async () => {
    const { path, p } = setup(zone('2024010101'), undefined, { serial: 'increment' });
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    const line = `${owner} 300 IN TLSA 3 1 1 ${h('a')} ${MANAGED_MARK}\n`;
    expect(readFileSync(path, 'utf8')).toBe(`${zone('2024010102')}${line}`);
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(`${zone('2024010102')}${line}`);
    await p.apply(owner, { add: [], remove: [rec('a')] }, 300);
    expect(readFileSync(path, 'utf8')).toBe(zone('2024010103'));
  });

  it('several owner names in one applyMany: one write, one bump; a record both added and removed stays', async () => {
    const { path, p } = setup(zone('10'), undefined, { serial: 'increment' });
    const owner2 = '_465._tcp.mx.example.org.';
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    await p.applyMany!(
      [
        { owner, add: [rec('a')], remove: [rec('a')] },
        { owner: owner2, add: [{ ...rec('b'), owner: owner2 }], remove: [] },
      ],
      () => 600,
    );
    // 'a' stays (add wins), and its add with TTL 600 sets the RRset's TTL (the contract's TTL rule).
    expect(readFileSync(path, 'utf8')).toBe(
      `${zone('12')}${owner} 600 IN TLSA 3 1 1 ${h('a')} ${MANAGED_MARK}\n${owner2} 600 IN TLSA 3 1 1 ${h('b')} ${MANAGED_MARK}\n`,
    );
    expect(await p.listMany!([owner, owner2])).toEqual(
      new Map([
        [owner, [rec('a')]],
        [owner2, [{ ...rec('b'), owner: owner2 }]],
      ]),
    );
  });

  it('keep is the default; dateserial and unixtime follow RFC 1982', async () => {
    const kept = setup(zone('7'));
    await kept.p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(readFileSync(kept.path, 'utf8').startsWith(zone('7'))).toBe(true);
    const now = new Date('2026-12-01T11:00:00Z');
    expect(nextSerial(2024010101, 'dateserial', now)).toBe(2026120100);
    expect(nextSerial(2026120100, 'dateserial', now)).toBe(2026120101);
    expect(nextSerial(2026120199, 'dateserial', now)).toBe(2026120200);
    expect(nextSerial(7, 'unixtime', now)).toBe(now.getTime() / 1000);
    expect(nextSerial(4294967295, 'increment', now)).toBe(0);
    // Unixtime cannot go back: a serial already ahead is incremented.
    expect(nextSerial(now.getTime() / 1000 + 5, 'unixtime', now)).toBe(now.getTime() / 1000 + 6);
  });

  it('a serial option without an SOA in path is exit 2 before anything is written', async () => {
    const { dir, path, p } = setup('$INCLUDE soa.inc\n', undefined, { serial: 'unixtime' });
    writeFileSync(join(dir, 'soa.inc'), zone('1'));
    expect(await badInput(p.apply(owner, { add: [rec('a')], remove: [] }, 300))).toMatch(
      /needs the SOA in this file.*soa\.inc/,
    );
    expect(readFileSync(path, 'utf8')).toBe('$INCLUDE soa.inc\n');
    const fragment = setup('; only TLSA here\n', undefined, { serial: 'increment' });
    expect(await badInput(fragment.p.list(owner))).toMatch(/needs an SOA record in this file/);
  });
});

describe('zonefile and exec options', () => {
  it('an unknown option is refused, naming the key and the one it probably meant', () => {
    expect(() =>
      createProvider({ path: 'z', relaod: 'knotc zone-reload example.org' }, ctxFor('/')),
    ).toThrow(/^relaod: zonefile has no option "relaod"; did you mean "reload"\?/);
    expect(() => createProvider({ path: 'z', serial: 'sometimes' }, ctxFor('/'))).toThrow(
      /^serial: "serial" must be one of keep, increment, unixtime, dateserial/,
    );
    expect(() => createProvider({ path: 'z', create: 'yes' }, ctxFor('/'))).toThrow(
      /^create: "create" must be true or false/,
    );
    expect(() => createExec({ command: 'true', timeot_s: 5 }, ctxFor('/'))).toThrow(
      /^timeot_s: exec has no option "timeot_s"; did you mean "timeout_s"\?/,
    );
  });
});
