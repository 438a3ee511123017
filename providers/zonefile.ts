/**
 * zonefile: the embedded default. Writes TLSA records into a zone file or an includable
 * fragment (`$INCLUDE` it from the zone, or point the server at it), then optionally runs a
 * reload command (`knotc zone-reload example.org`, `rndc reload example.org`).
 *
 * Credentials: none; the process needs write access to the file's directory.
 * Options:     path (required); origin (the zone name, for files that use relative names
 *              without $ORIGIN because the server supplies it); reload (optional shell command,
 *              run in the config file's directory); reload_timeout_s (60).
 * Servers:     Knot must not rewrite the file: `zonefile-sync: -1`, and to pick up edits
 *              without a serial change `zonefile-load: difference-no-serial` with
 *              `journal-content: all`; reload with `knotc -b zone-reload ZONE` (-b waits and
 *              fails on a parse error). The SOA serial is not touched by this provider.
 * Zone:        the file is the zone; owner names are written absolute, so any $ORIGIN works.
 * Ownership:   lines this provider writes end with `; tlsa:managed`; every other line (SOA,
 *              foreign TLSA records, comments, directives) is kept byte for byte.
 * Limits:      one writer per file: the engine's state lock serialises our own processes.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../src/util/atomic-write.js';
import { formatRecord, parseRecordLine, stripComment, ttlSeconds } from '../src/tlsa/presentation.js';
import { acquireLockFile } from '../src/engine/lock.js';
import { runCommand } from '../src/util/run-command.js';
import { normaliseName, recordKey, type TlsaRecord } from '../src/tlsa/record.js';
import { checkChangeOwners, ProviderError, type DnsProvider, type ProviderFactory, type TlsaChange } from './index.js';

export const MANAGED_MARK = '; tlsa:managed';

interface Entry {
  /** The physical lines of this logical entry, verbatim. */
  lines: string[];
  record?: TlsaRecord;
  /** Owner and type of a non-TLSA record, to see a CNAME at a TLSA owner name. */
  other?: { owner: string; type: string };
  managed: boolean;
}


/** Split a zone file into logical entries (parentheses may span lines) and parse the TLSA ones. */
export function parseZone(text: string, file: string, defaultOrigin?: string): Entry[] {
  const physical = text.split('\n');
  if (physical.at(-1) === '') physical.pop();
  const entries: Entry[] = [];
  let origin: string | undefined = defaultOrigin;
  let previousOwner: string | undefined;
  for (let i = 0; i < physical.length; i++) {
    const startLine = i + 1;
    const lines = [physical[i]!];
    let depth = parenDepth(physical[i]!);
    while (depth > 0 && i + 1 < physical.length) {
      i++;
      lines.push(physical[i]!);
      depth += parenDepth(physical[i]!);
    }
    const joined = lines.join(' ');
    const bare = stripComment(joined).trim();
    const directive = /^\$(ORIGIN|TTL|INCLUDE)\s+(\S+)/i.exec(bare);
    let record: TlsaRecord | undefined;
    if (directive) {
      if (directive[1]!.toUpperCase() === 'ORIGIN') origin = normaliseName(directive[2]!);
    } else if (bare) {
      try {
        const parsed = parseRecordLine(joined, origin, previousOwner);
        if (parsed) record = parsed.record;
        const ownerToken = /^\S/.test(joined) ? bare.split(/\s+/)[0] : undefined;
        if (ownerToken) {
          try { previousOwner = parsed?.owner ?? absolute(ownerToken, origin); } catch { previousOwner = undefined; }
        }
      } catch (e) {
        throw new SyntaxError(`${file}:${startLine}: ${(e as Error).message}`);
      }
    }
    let other: Entry['other'];
    if (!record && bare && !directive && previousOwner) {
      const type = recordType(bare.replace(/[()]/g, ' ').split(/\s+/), /^\s/.test(joined));
      if (type) other = { owner: previousOwner, type };
    }
    entries.push({ lines, ...(record ? { record } : {}), ...(other ? { other } : {}), managed: joined.includes(MANAGED_MARK) });
  }
  return entries;
}

/** The type of a record line: skip the owner (unless the line starts blank), TTL and class. */
function recordType(tokens: string[], startsBlank: boolean): string | undefined {
  let i = startsBlank ? 0 : 1;
  for (let k = 0; k < 2 && i < tokens.length; k++) {
    if (ttlSeconds(tokens[i]!) !== undefined || /^(IN|CH|HS|CS)$/i.test(tokens[i]!)) i++;
  }
  return tokens[i]?.toUpperCase();
}

function absolute(token: string, origin?: string): string {
  if (token === '@' && origin) return origin;
  if (!token.endsWith('.') && !origin) throw new SyntaxError(`relative name "${token}" without an origin`);
  return token.endsWith('.') ? normaliseName(token) : normaliseName(`${token}.${origin}`);
}

function parenDepth(line: string): number {
  // Brackets inside quoted strings (a TXT record) do not group lines.
  const t = stripComment(line).replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return (t.match(/\(/g)?.length ?? 0) - (t.match(/\)/g)?.length ?? 0);
}

function render(entries: Entry[]): string {
  const out = entries.flatMap((e) => e.lines).join('\n');
  return out ? `${out}\n` : '';
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const path = options['path'];
  if (typeof path !== 'string' || !path) throw ctx.optionError('path', 'zonefile needs "path": the zone file to write');
  const reload = options['reload'];
  if (reload !== undefined && typeof reload !== 'string') throw ctx.optionError('reload', '"reload" must be a shell command string');
  const originOpt = options['origin'];
  if (originOpt !== undefined && typeof originOpt !== 'string') throw ctx.optionError('origin', '"origin" must be a zone name such as example.org.');
  let origin: string | undefined;
  try {
    origin = originOpt ? normaliseName(originOpt) : undefined;
  } catch (e) {
    throw ctx.optionError('origin', (e as Error).message);
  }
  const timeout = options['reload_timeout_s'] ?? 60;
  if (typeof timeout !== 'number' || timeout <= 0) throw ctx.optionError('reload_timeout_s', '"reload_timeout_s" must be a positive number');
  const file = resolve(ctx.baseDir, path);
  const pendingMarker = `${file}.reload-pending`;
  const name = `zonefile(${ctx.instance})`;

  function read(): Entry[] {
    if (!existsSync(file)) return [];
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ProviderError(name, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      return parseZone(text, file, origin);
    } catch (e) {
      throw new ProviderError(name, `${(e as Error).message}${/origin/i.test((e as Error).message) && !origin ? ' (set the provider option "origin" when the server supplies it)' : ''}`);
    }
  }

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      // The mark tells `tlsa adopt` which lines a tlsa wrote (after a lost state).
      return read().flatMap((e) => (e.record && e.record.owner === o ? [e.managed ? { ...e.record, managed: true } : e.record] : []));
    },
    async apply(owner, change: TlsaChange, ttl) {
      const o = normaliseName(owner);
      checkChangeOwners(name, o, change);
      // Another process (a second host's hook, an editor's script) may write the same file:
      // read-modify-write only under the file's own lock.
      const release = await acquireLockFile(`${file}.lock`, { command: 'zonefile', waitSeconds: 30 }).catch((e: Error) => {
        throw new ProviderError(name, e.message);
      });
      try {
        const entries = read();
        const alias = entries.find((e) => e.other?.owner === o && e.other.type === 'CNAME');
        if (alias) throw new ProviderError(name, `${o} has a CNAME in ${file}; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME`);
        const removeKeys = new Set(change.remove.map(recordKey));
        // Only lines we wrote are removed: an identical foreign line is someone else's record.
        const kept = entries.filter((e) => !(e.managed && e.record?.owner === o && removeKeys.has(recordKey(e.record))));
        const present = new Set(kept.flatMap((e) => (e.record ? [recordKey(e.record)] : [])));
        for (const r of change.add) {
          if (present.has(recordKey(r))) continue;
          present.add(recordKey(r));
          kept.push({ lines: [`${formatRecord(r, ttl)} ${MANAGED_MARK}`], record: r, managed: true });
        }
        if (kept.length === entries.length && kept.every((e, i) => e === entries[i])) return;
        try {
          writeFileAtomic(file, render(kept));
          if (reload) writeFileSync(pendingMarker, `${new Date().toISOString()}\n`);
        } catch (e) {
          throw new ProviderError(name, `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      } finally {
        release();
      }
    },
    async flush() {
      if (!reload || !existsSync(pendingMarker)) return;
      await runReload(name, reload, timeout * 1000, ctx.baseDir);
      rmSync(pendingMarker, { force: true });
    },
  };
  return provider;
};

async function runReload(name: string, command: string, timeoutMs: number, cwd: string): Promise<void> {
  const r = await runCommand(command, timeoutMs, cwd);
  if (!r.ok) throw new ProviderError(name, `reload command ${r.message}; the zone file is written, the reload will be retried on the next run`);
}
