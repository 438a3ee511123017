/**
 * zonefile: the embedded default. Writes TLSA records into a zone file or an includable
 * fragment (`$INCLUDE` it from the zone, or point the server at it), then optionally runs a
 * reload command (`knotc zone-reload example.org`, `rndc reload example.org`).
 *
 * Credentials: none; the process needs write access to the file's directory.
 * Options:     path (required); create (false: a missing file is an error, exit 2; true:
 *              start it empty); origin (the zone name, for files that use relative names
 *              without $ORIGIN because the server supplies it); reload (optional shell command,
 *              run in the config file's directory); reload_timeout_s (60); serial (keep |
 *              increment | unixtime | dateserial: bump the SOA serial in `path` on each write,
 *              for servers that do not; default keep). Unknown options are refused.
 * Servers:     Knot must not rewrite the file: `zonefile-sync: -1`, and to pick up edits
 *              without a serial change `zonefile-load: difference-no-serial` with
 *              `journal-content: all` (or set `serial`); reload with `knotc -b zone-reload
 *              ZONE` (-b waits and fails on a parse error).
 * Zone:        parsed as RFC 1035 §5.1 says (parentheses, comments, quotes, $ORIGIN, $TTL,
 *              inherited owners); a file tlsa cannot parse is refused with file:line (exit 2)
 *              and left untouched. Owner names are written absolute, so any $ORIGIN works.
 * $INCLUDE:    included files are read (relative paths against the including file's
 *              directory, as Knot does; BIND resolves them against its `directory`, so write
 *              absolute paths there when it differs; loops, missing files and deep chains
 *              refused), so a record already in one is seen and never added again. Only `path`
 *              is written: a line tlsa wrote found in an included file is refused (exit 2),
 *              naming the file to set as `path`.
 * Links:       a zone path that is a symlink is written through: the target is replaced
 *              atomically in its own directory and the link stays. Anything but a regular file
 *              (FIFO, device, directory) is refused; temp files are created O_EXCL, the lock
 *              and the reload marker never follow a symlink.
 * TTL:         a server loads one TTL per RRset (BIND the first line's, Knot the last's):
 *              effectiveTtl() raises tlsa's TTL at an owner to the highest of the TLSA lines
 *              there that tlsa did not write (zonefile-ttl.ts), so the lines it writes take it
 *              and the engine waits on it. Its own (marked) lines never pin it.
 * Line ends:   lines tlsa writes end in CR LF when most lines of `path` do.
 * Ownership:   lines this provider writes end with `; tlsa:managed`; every other line (SOA,
 *              foreign TLSA records, comments, directives) is kept byte for byte, except the
 *              SOA serial's digits when `serial` is set. A removal takes out the marked line;
 *              an unmarked line only when no marked twin exists (the engine asks to remove
 *              only records it owns, so that is one `tlsa adopt` took over).
 * TXT:         for ACME DNS-01, `; tlsa:managed` TXT lines under the same lock, serial and
 *              reload: zonefile-txt.ts.
 * Limits:      one writer per file: the engine's state lock serialises our own processes.
 */
import { rmSync, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../src/errors.js';
import { groupBy } from '../src/util/group-by.js';
import { formatRecord } from '../src/tlsa/presentation.js';
import { acquireLockFile } from '../src/util/file-lock.js';
import { normaliseName, recordKey, type TlsaRecord } from '../src/tlsa/record.js';
import {
  ProviderError,
  type DnsProvider,
  type OwnerChange,
  type ProviderFactory,
  type TlsaChange,
} from './contract.js';
import { checkChangeOwners, cnameError, mergeChanges, rdataKey } from './kit.js';
import { readOptions } from './options.js';
import { ZONEFILE_OPTIONS } from './zonefile-options.js';
import {
  MANAGED_MARK,
  parseZone,
  render,
  type Entry,
  withFileEndings,
  withoutEntries,
} from './zonefile-parse.js';
import { bumpSerial, type SerialPolicy } from './zonefile-serial.js';
import {
  loadIncludes,
  readRegularFile,
  resolveZonePath,
  runReload,
  writeMarker,
  writeZone,
  type ZoneFile,
} from './zonefile-files.js';
import { zonefileTxt } from './zonefile-txt.js';
import { foreignTtls, publishedTtl, type PinningLine } from './zonefile-ttl.js';

export { MANAGED_MARK, parseZone } from './zonefile-parse.js';

interface LoadedZone {
  /** The file written: the symlink's target when `path` is a link. */
  real: string;
  main: ZoneFile;
  includes: ZoneFile[];
  /** The SOA entry of `path`, when `serial` asks for bumps. */
  soaIndex?: number;
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(ZONEFILE_OPTIONS, options, ctx);
  const { path, reload, create } = opt;
  const originOpt = opt.origin;
  let origin: string | undefined;
  try {
    origin = originOpt ? normaliseName(originOpt) : undefined;
  } catch (e) {
    throw ctx.optionError('origin', (e as Error).message);
  }
  const timeout = opt.reload_timeout_s;
  const serial = opt.serial as SerialPolicy;
  const file = resolve(ctx.baseDir, path);
  const name = `zonefile(${ctx.instance})`;
  const originHint = origin
    ? ''
    : ' (add $ORIGIN to the file, or set the provider option "origin" when the server supplies it)';
  /** The marker and the lock sit beside the real file, so writers through different links share them. */
  const besideReal = (suffix: string) => `${resolveZonePath(file).real}${suffix}`;

  function load(): LoadedZone {
    const { real, exists } = resolveZonePath(file);
    const text = exists ? readRegularFile(real, 'the zone file', true) : undefined;
    if (text === undefined && !create) {
      throw new InputError(
        'the zone file does not exist; create it, fix "path", or set "create: true" to let tlsa start it empty',
        file,
      );
    }
    const main: ZoneFile = {
      file,
      entries: parseZone(text ?? '', file, { ...(origin ? { origin } : {}), originHint }),
    };
    const includes = loadIncludes(main, { originHint });
    // tlsa writes only `path`: its own lines in an include (path used to name that file) could
    // never be removed, so the run stops before it plans anything.
    for (const z of includes) {
      const ours = z.entries.find((e) => e.managed);
      if (ours)
        throw new InputError(
          `a line tlsa wrote ("${MANAGED_MARK.slice(2)}") is in this file, which ${path} $INCLUDEs; tlsa writes only "path": set path: ${z.file}`,
          z.file,
          ours.line,
        );
    }
    const loaded: LoadedZone = { real, main, includes };
    if (serial !== 'keep') {
      const soas = main.entries.flatMap((e, i) => (e.soa ? [i] : []));
      if (soas.length > 1)
        throw new InputError(
          `two SOA records (lines ${soas.map((i) => main.entries[i]!.line).join(', ')}); "serial: ${serial}" needs exactly one`,
          file,
        );
      if (soas.length === 0) {
        const inc = includes.find((z) => z.entries.some((e) => e.soa));
        throw new InputError(
          inc
            ? `"serial: ${serial}" needs the SOA in this file, tlsa writes only "path"; it is in ${inc.file} (set path to that file, or serial: keep)`
            : `"serial: ${serial}" needs an SOA record in this file; a fragment without one takes serial: keep`,
          file,
        );
      }
      loaded.soaIndex = soas[0]!;
    }
    return loaded;
  }

  const allEntries = (z: LoadedZone): { file: string; entry: Entry }[] =>
    [z.main, ...z.includes].flatMap((f) => f.entries.map((entry) => ({ file: f.file, entry })));

  // Reads (effectiveTtl once per owner, then the listing) share one parse of the zone while its
  // files stay as they were; a write re-reads under the lock, whatever was seen before.
  // The signature is numbers (inode, size, mtime, ctime per file; -1s where a file is missing)
  // compared in place: a read per owner builds no strings. The ctime: a sync tool that writes
  // in place and puts the source's mtime back (rsync --inplace -t, cp -p) keeps inode, size
  // (a TLSA line's new data has the old length) and mtime, but every write moves the ctime.
  let seen:
    | { files: string[]; sig?: number[]; zone: LoadedZone; pins?: Map<string, PinningLine> }
    | undefined;
  // The main file is stat'ed by `path` as configured, through a link there: a link moved to
  // another file (a release swap) changes it, where the old target, left as it was, would not.
  const signature = (files: string[]): number[] => {
    const out: number[] = [];
    for (let i = 0; i < files.length; i++) {
      const f = i === 0 ? file : files[i]!;
      try {
        const s = statSync(f);
        out.push(s.ino, s.size, s.mtimeMs, s.ctimeMs);
      } catch {
        out.push(-1, -1, -1, -1);
      }
    }
    return out;
  };
  const unchanged = (files: string[], sig: number[] | undefined): boolean => {
    if (!sig) return false;
    const now = signature(files);
    return now.length === sig.length && now.every((n, i) => n === sig[i]);
  };
  function read(): NonNullable<typeof seen> {
    if (seen && unchanged(seen.files, seen.sig)) return seen;
    // Stat before reading, so that a change made while the file is read is seen next time.
    const files = [resolveZonePath(file).real, ...(seen?.files.slice(1) ?? [])];
    const before = signature(files);
    const zone = load();
    const now = [zone.real, ...zone.includes.map((z) => z.file)];
    const sig = now.join('\0') === files.join('\0') ? before : undefined;
    seen = { files: now, sig, zone };
    return seen;
  }
  function pinningLines(): Map<string, PinningLine> {
    const r = read();
    r.pins ??= foreignTtls(allEntries(r.zone));
    return r.pins;
  }

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      return allEntries(read().zone).flatMap(({ entry: e }) =>
        e.record && e.record.owner === o ? [e.record] : [],
      );
    },
    async listMany(owners) {
      // One pass over the zone, then a lookup per owner: thousands of owners stay linear.
      // The records straight from each file's entries (no wrapper per entry, as allEntries makes).
      const zone = read().zone;
      const records: TlsaRecord[] = [];
      for (const f of [zone.main, ...zone.includes])
        for (const e of f.entries) if (e.record) records.push(e.record);
      const at = groupBy(records, (r) => r.owner);
      // The listing is the last read of a plan: the parsed zone (every line of the file, held
      // by the cache) is let go rather than kept to the end of the run. A read after it (a
      // plan made again with the file unchanged) parses the file again.
      seen = undefined;
      return new Map(owners.map((owner) => [owner, [...(at.get(normaliseName(owner)) ?? [])]]));
    },
    async effectiveTtl(owner, ttl) {
      // The server serves one TTL per RRset: a higher one on a line tlsa did not write wins.
      return publishedTtl(ttl, pinningLines().get(normaliseName(owner)));
    },
    async effectiveTtlMany(asks) {
      // The zone's signature is checked once for all of them, not once per owner.
      const pins = pinningLines();
      return asks.map(({ owner, ttl }) => publishedTtl(ttl, pins.get(normaliseName(owner))));
    },
    async markedKeys(owners) {
      // The mark tells `tlsa adopt` which lines a tlsa wrote (after a lost state).
      const wanted = new Set(owners.map((o) => normaliseName(o)));
      return new Set(
        allEntries(load()).flatMap(({ entry: e }) =>
          e.managed && e.record && wanted.has(e.record.owner) ? [recordKey(e.record)] : [],
        ),
      );
    },
    async apply(owner, change: TlsaChange, ttl) {
      await applyChanges([{ owner, ...change }], () => ttl);
    },
    async applyMany(changes, ttl) {
      await applyChanges(changes, ttl);
    },
    async flush() {
      const marker = besideReal('.reload-pending');
      if (!reload || !existsSync(marker)) return;
      await runReload(name, reload, timeout * 1000, ctx.baseDir);
      rmSync(marker, { force: true });
    },
    txt: zonefileTxt({
      name,
      read: () => allEntries(load()),
      rewrite: (edit) => rewrite((zone) => edit(zone.main.entries, allEntries(zone))),
      flush: () => provider.flush!(),
    }),
  };

  /** One read-modify-write of `path` under its lock: `edit` gives the new entries of `path`
   *  (undefined: nothing to write); one write, one serial bump, the reload marked pending. */
  async function rewrite(edit: (zone: LoadedZone) => Entry[] | undefined): Promise<void> {
    // Another process (a second host's hook, an editor's script) may write the same file:
    // read-modify-write only under the file's own lock.
    const release = await acquireLockFile(besideReal('.lock'), {
      command: 'zonefile',
      waitSeconds: 30,
    }).catch((e: Error) => {
      throw e instanceof InputError ? e : new ProviderError(name, e.message);
    });
    try {
      const zone = load();
      const next = edit(zone);
      if (!next) return;
      if (zone.soaIndex !== undefined && serial !== 'keep') {
        const at = next.indexOf(zone.main.entries[zone.soaIndex]!);
        next[at] = bumpSerial(next[at]!, serial, new Date(), file);
      }
      // The marker first: a crash after the zone write still leaves the reload pending.
      if (reload) writeMarker(besideReal('.reload-pending'), `${new Date().toISOString()}\n`);
      writeZone(name, zone.real, render(withFileEndings(next, zone.main.entries)));
    } finally {
      release();
    }
  }

  /** All changes in one rewrite of `path`. */
  async function applyChanges(
    changes: OwnerChange[],
    ttlFor: (owner: string) => number,
  ): Promise<void> {
    for (const c of changes) checkChangeOwners(name, c.owner, c);
    await rewrite((zone) => {
      const all = allEntries(zone);
      const entries = zone.main.entries;
      // Indexes built once (not per change): a run that changes thousands of owners stays linear.
      const aliases = new Map<string, string>();
      for (const { file: f, entry: e } of all)
        if (e.other?.type === 'CNAME' && !aliases.has(e.other.owner)) aliases.set(e.other.owner, f);
      const mainAt = groupBy(
        entries.filter((e) => e.record),
        (e) => e.record!.owner,
      );
      // How many records with each owner and data the zone holds (kept, added, and in the
      // includes).
      const present = new Map<string, number>();
      const keyAt = (owner: string, r: TlsaRecord) => `${owner} ${rdataKey(r)}`;
      const count = (k: string, by: number) => present.set(k, (present.get(k) ?? 0) + by);
      for (const e of [...entries, ...zone.includes.flatMap((z) => z.entries)])
        if (e.record) count(keyAt(e.record.owner, e.record), 1);
      const dropped = new Set<Entry>();
      const retimed = new Map<Entry, Entry>();
      const added: Entry[] = [];
      for (const w of mergeChanges(name, changes, ttlFor)) {
        const o = w.owner;
        const alias = aliases.get(o);
        if (alias) throw cnameError(name, [{ owner: o }], alias);
        const here = (mainAt.get(o) ?? []).filter((e) => !dropped.has(e));
        // The lines tlsa wrote go; an identical unmarked line beside one is someone else's record.
        // An unmarked line alone is removed only because the engine asks, and it asks only for
        // records it owns: one that `tlsa adopt` took over.
        const going = here.filter((e) => w.removeKeys.has(rdataKey(e.record!)));
        const marked = new Set(going.filter((e) => e.managed).map((e) => rdataKey(e.record!)));
        for (const e of going)
          if (e.managed || !marked.has(rdataKey(e.record!))) {
            dropped.add(e);
            count(keyAt(o, e.record!), -1);
          }
        // An add of a record already there with another TTL (the configured TTL changed) gives
        // every TLSA line of the owner in this file the TTL: DNS serves one TTL per RRset.
        const staying = here.filter((e) => !dropped.has(e));
        if (staying.some((e) => w.addKeys.includes(rdataKey(e.record!)) && e.ttl !== w.ttl))
          for (const e of staying) if (e.ttl !== w.ttl) retimed.set(e, withTtl(e, w.ttl));
        for (const r of w.add) {
          if (present.get(keyAt(o, r))) continue;
          count(keyAt(o, r), 1);
          const lines = [`${formatRecord(r, w.ttl)} ${MANAGED_MARK}`];
          added.push({ lines, line: 0, record: r, ttl: w.ttl, managed: true });
        }
      }
      const kept =
        dropped.size || retimed.size
          ? withoutEntries(
              entries.map((e) => retimed.get(e) ?? e),
              dropped,
            )
          : entries;
      const next = [...kept, ...added];
      const same = next.length === entries.length && next.every((e, i) => e === entries[i]);
      return same ? undefined : next;
    });
  }

  return provider;
};

/** A TLSA line rewritten with another TTL (tlsa's mark kept). */
function withTtl(e: Entry, ttl: number): Entry {
  const line = `${formatRecord(e.record!, ttl)}${e.managed ? ` ${MANAGED_MARK}` : ''}`;
  return { ...e, lines: [line], ttl };
}
