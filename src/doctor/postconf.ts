/**
 * Reading Postfix's real configuration through its own `postconf` (never by parsing main.cf
 * ourselves: postconf knows the defaults, `$name` expansion and master.cf's `-o { … }` syntax):
 *
 *   postconf [-c DIR] -n      what the operator set in main.cf (unexpanded)
 *   postconf [-c DIR] -x      every parameter's effective value, defaults included, expanded
 *   postconf [-c DIR] -P -x   master.cf `-o` overrides per service (`name/type/param = value`)
 *   postconf [-c DIR] -M      the services (`name type private unpriv chroot wakeup maxproc command…`)
 *
 * plus `postmap [-c DIR] -s TYPE:NAME` to list a lookup table (TLS policy maps).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { InputError } from '../errors.js';

export interface MasterService {
  /** First master.cf field: `smtp`, `submission`, `127.0.0.1:2525`, … */
  name: string;
  /** `inet`, `unix`, `pass`, `fifo`, `unix-dgram`. */
  type: string;
  /** The program, without its directory: `smtpd`, `smtp`, `postscreen`, … */
  command: string;
  /** The whole command field as postconf prints it. */
  commandLine: string;
  /** `-o name=value` overrides (expanded with main.cf's values). */
  overrides: Map<string, string>;
}

export interface PostfixConfig {
  /** The -c DIR given, or undefined for the default instance. */
  configDir: string | undefined;
  /** config_directory as postconf reports it. */
  effectiveConfigDir: string;
  /** mail_version, e.g. 3.7.11. */
  version: string;
  /** Parameters set in main.cf (postconf -n), unexpanded. */
  explicit: Map<string, string>;
  /** Every parameter's effective value (postconf -x), expanded. */
  effective: Map<string, string>;
  services: MasterService[];
  postconfPath: string;
}

const BIN_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin', '/usr/local/bin'];

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** `$TLSA_POSTCONF`, else `postconf` on PATH or in the usual sbin directories. */
export function findPostconf(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.TLSA_POSTCONF;
  if (override) {
    if (!executable(override))
      throw new InputError(
        `postconf not found or not executable ($TLSA_POSTCONF): install Postfix`,
        override,
      );
    return override;
  }
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...BIN_DIRS];
  for (const d of dirs) {
    const p = join(d, 'postconf');
    if (executable(p)) return p;
  }
  throw new InputError(
    'postconf not found (looked on PATH and in /usr/sbin): install Postfix (Debian: apt-get install postfix)',
  );
}

/** Lines `name = value` → map. Continuation lines (leading white space) join the previous one. */
export function parseParameterLines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (/^\s/.test(line) && last !== undefined) {
      out.set(last, `${out.get(last) ?? ''} ${line.trim()}`.trim());
      continue;
    }
    const m = /^([^\s=]+)\s*=\s?(.*)$/.exec(line);
    if (!m) continue;
    last = m[1]!;
    out.set(last, m[2]!.trim());
  }
  return out;
}

/** `postconf -P` lines: `service/type/param = value`. */
export function parseServiceParameters(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  for (const [key, value] of parseParameterLines(text)) {
    const parts = key.split('/');
    if (parts.length < 3) continue;
    const param = parts.pop()!;
    const type = parts.pop()!;
    const name = parts.join('/');
    const id = `${name}/${type}`;
    if (!out.has(id)) out.set(id, new Map());
    out.get(id)!.set(param, value);
  }
  return out;
}

/** `postconf -M` lines: the seven fixed fields, then the command with its arguments. */
export function parseMasterServices(
  text: string,
  overrides: Map<string, Map<string, string>>,
): MasterService[] {
  const joined: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    if (/^\s/.test(line) && joined.length) joined[joined.length - 1] += ` ${line.trim()}`;
    else joined.push(line.trim());
  }
  const services: MasterService[] = [];
  for (const line of joined) {
    const fields = line.split(/\s+/);
    if (fields.length < 8) continue;
    const [name, type] = fields as [string, string];
    const commandLine = fields.slice(7).join(' ');
    const program = fields[7]!;
    services.push({
      name,
      type,
      command: program.replace(/^.*\//, ''),
      commandLine,
      overrides: overrides.get(`${name}/${type}`) ?? new Map(),
    });
  }
  return services;
}

export class PostconfError extends InputError {}

function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      { encoding: 'utf8', timeout: 20_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const e = err as NodeJS.ErrnoException & { code?: string | number };
        const why =
          String(stderr ?? '')
            .trim()
            .split('\n')
            .filter(Boolean)
            .slice(-2)
            .join(' | ') || String(e.code ?? e.message);
        reject(new PostconfError(`${bin.replace(/^.*\//, '')} ${args.join(' ')} failed: ${why}`));
      },
    );
  });
}

const SEPARATOR = '@@tlsa-doctor-postconf@@';

/** Several postconf runs through one /bin/sh: spawning from a large Node process costs far
 *  more than a fork of the shell. Each run's output, in order; the first failure rejects. */
async function runPostconfBatch(
  postconf: string,
  common: string[],
  runs: string[][],
): Promise<string[]> {
  const script = runs
    .map((args, i) => `"$0" "$@" ${args.join(' ')} || exit ${10 + i}`)
    .join(` && echo ${SEPARATOR} && `);
  let text: string;
  try {
    text = await run('/bin/sh', ['-c', script, postconf, ...common]);
  } catch (e) {
    throw new PostconfError(
      (e as Error).message.replace(
        /^sh -c .* failed: /,
        `${[postconf.replace(/^.*\//, ''), ...common].join(' ')} failed: `,
      ),
    );
  }
  const out: string[] = [''];
  for (const line of text.split('\n')) {
    if (line === SEPARATOR) out.push('');
    else out[out.length - 1] += `${line}\n`;
  }
  return out;
}

/** Read a Postfix instance: main.cf (explicit and effective), master.cf services and overrides. */
export async function readPostfixConfig(
  opts: { configDir?: string; postconf?: string } = {},
): Promise<PostfixConfig> {
  const postconf = opts.postconf ?? findPostconf();
  const dir = opts.configDir;
  if (dir !== undefined) {
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {
      /* below */
    }
    if (!isDir) throw new InputError('Postfix configuration directory not found', dir);
  }
  const c = dir !== undefined ? ['-c', dir] : [];
  const [n = '', x = '', p = '', m = ''] = await runPostconfBatch(postconf, c, [
    ['-n'],
    ['-x'],
    ['-P', '-x'],
    ['-M'],
  ]);
  const explicit = parseParameterLines(n);
  const effective = parseParameterLines(x);
  const services = parseMasterServices(m, parseServiceParameters(p));
  return {
    configDir: dir,
    effectiveConfigDir: effective.get('config_directory') ?? dir ?? '/etc/postfix',
    version: effective.get('mail_version') ?? 'unknown',
    explicit,
    effective,
    services,
    postconfPath: postconf,
  };
}

/** `postmap -s TABLE`: every key and value of a lookup table; throws when the type cannot list. */
export async function listTable(
  cfg: PostfixConfig,
  table: string,
): Promise<{ key: string; value: string }[]> {
  const commandDir = cfg.effective.get('command_directory') ?? '/usr/sbin';
  const postmap = [join(commandDir, 'postmap'), ...BIN_DIRS.map((d) => join(d, 'postmap'))].find(
    executable,
  );
  if (!postmap) throw new Error('postmap not found');
  const text = await run(postmap, [
    ...(cfg.configDir !== undefined ? ['-c', cfg.configDir] : []),
    '-s',
    table,
  ]);
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const m = /^(\S+)\s+(.*)$/.exec(l.trim());
      return m ? { key: m[1]!, value: m[2]!.trim() } : { key: l.trim(), value: '' };
    });
}

/** Split a Postfix list of tables (`hash:/a, inline:{ k=v, {k2 = v w} }`) on commas and white
 *  space outside braces. */
export function splitTableList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (depth === 0 && /[\s,]/.test(ch)) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** Postfix's list separators: white space and commas (and colons where the doc says so). */
export function splitList(value: string, colons = false): string[] {
  return value.split(colons ? /[\s,:]+/ : /[\s,]+/).filter(Boolean);
}

/** Compare dotted versions: <0, 0, >0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** The tables to list for a table of a Postfix list, wrappers read through: `proxy:TYPE:NAME`
 *  is TYPE:NAME (proxymap only forwards lookups, and cannot list), `unionmap:{a, b}` is a and
 *  b. Other types are returned as they are (`postmap -s` says whether it can list them). */
export function underlyingTables(table: string): string[] {
  const proxy = /^proxy:(.+)$/i.exec(table);
  if (proxy) return underlyingTables(proxy[1]!);
  const union = /^unionmap:\s*\{(.*)\}$/is.exec(table.trim());
  if (union) return splitTableList(union[1]!).flatMap(underlyingTables);
  return [table];
}
