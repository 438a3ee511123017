/** Read the YAML config: syntax and schema errors point at file:line and the key path;
 *  `${ENV}` and `*_file` secrets are resolved; relative paths resolve against the file's dir. */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  LineCounter,
  parseDocument,
  isMap,
  isSeq,
  isScalar,
  visit,
  type Document,
  type Node,
} from 'yaml';
import { InputError, errnoCode } from '../errors.js';
import { HostError, parseHost } from '../tlsa/host.js';
import {
  InputFileError,
  MAX_CONFIG_BYTES,
  MAX_SECRET_BYTES,
  readInputText,
} from '../util/read-input.js';
import { registerSecret } from '../util/redact.js';
import type { z } from 'zod';
import { installedCopies, keyAccessOf, type InstalledCopy, type KeyAccess } from './installs.js';
import { readPlainYaml } from './plain-yaml.js';
import { protocolClash } from './ports.js';
import { checkConfig } from './check-config.js';
import type { RawConfig } from './schema.js';

export type ConfigPath = (string | number)[];

export interface LoadedConfig {
  file: string;
  baseDir: string;
  raw: RawConfig;
  stateDir: string;
  /** 1-based line of the value at this path, or of its nearest existing parent. */
  lineOf(path: ConfigPath): number | undefined;
  error(path: ConfigPath, message: string): InputError;
  warnings: string[];
  /** Owner, group and mode of the installed key copies, per service with install:. */
  keyAccess: Map<string, KeyAccess>;
  /** Installed copies (install.dir/NAME) by key, with the services that share each. */
  installs: Map<string, InstalledCopy>;
}

function pathText(path: ConfigPath): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

export function loadConfig(file: string): LoadedConfig {
  const abs = resolve(file);
  const text = readInputText(abs, {
    what: 'the configuration',
    maxBytes: MAX_CONFIG_BYTES,
    shownAs: file,
  });
  // Most configurations are plain block YAML, read here in one quick pass; anything else (or
  // any error) goes through the `yaml` document, which knows every line. A value read the quick
  // way has no positions: an error's line comes from parsing the text again, when asked.
  const plain = readPlainYaml(text);
  let kept: { doc: Document; lineCounter: LineCounter } | undefined;
  if (plain === undefined) kept = parseChecked(text, file);
  let loading = true;
  const lineOf = (path: ConfigPath): number | undefined => {
    const p = kept ?? reparse(text);
    if (loading) kept = p;
    return lineOfPath(p.doc, p.lineCounter, path);
  };
  const error = (path: ConfigPath, message: string) =>
    new InputError(path.length ? `${pathText(path)}: ${message}` : message, file, lineOf(path));

  const warnings: string[] = [];
  const data = resolveSecrets(
    plain !== undefined ? plain : kept!.doc.toJS(),
    [],
    error,
    warnings,
    dirname(abs),
  );
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw error([], 'the configuration must be a YAML mapping (providers:, services:)');
  const parsed = checkConfig(data as Record<string, unknown>);
  if (!parsed.success) {
    const issue = portEntryIssue(parsed.error.issues[0]!, data);
    let path = issue.path as ConfigPath;
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...path, issue.keys[0]!];
      message = `unknown key "${issue.keys[0]}"`;
    } else if (issue.code === 'invalid_type' && /received undefined/.test(message)) {
      message = `missing required key "${String(path.at(-1))}"`;
    } else if (issue.code === 'invalid_union' && path.at(-1) === 'http01') {
      message = 'http01 is one of {webroot: DIR} or {standalone: "IP:PORT"}';
    } else if (issue.code === 'invalid_union') {
      message =
        'a certificate source is one of {lineage}, {fullchain, key?} or {cert, chain?, key?}';
    }
    throw error(path, message);
  }
  const raw = parsed.data;
  for (const [name, svc] of Object.entries(raw.services)) {
    if (!raw.providers[svc.provider]) {
      throw error(
        ['services', name, 'provider'],
        `unknown provider "${svc.provider}" (defined: ${Object.keys(raw.providers).join(', ') || 'none'})`,
      );
    }
    const dns01Provider = svc.acme?.challenge.dns01?.provider;
    if (dns01Provider !== undefined && !raw.providers[dns01Provider]) {
      throw error(
        ['services', name, 'acme', 'challenge', 'dns01', 'provider'],
        `unknown provider "${dns01Provider}" (defined: ${Object.keys(raw.providers).join(', ') || 'none'})`,
      );
    }
  }
  normaliseHosts(raw, error);
  for (const [name, svc] of Object.entries(raw.services)) {
    if (!svc.acme) continue;
    if (svc.acme.eab) registerSecret(svc.acme.eab.hmac_key);
    // The name becomes a directory under STATE_DIR/acme/: "../x" would put keys elsewhere.
    if (!ACME_SERVICE_NAME.test(name) || name === 'accounts')
      throw error(
        ['services', name],
        `a service with acme: needs a plain name (letters, digits, ".", "_", "-"; not "accounts"): its lineage lives in ${raw.state_dir}/acme/<service>/`,
      );
  }
  const clash = protocolClash(raw.services);
  if (clash) throw error(['services', clash.service, 'ports', clash.index], clash.message);
  const baseDir = dirname(abs);
  const keyAccess = keyAccessOf(raw, error);
  const installs = installedCopies(raw, baseDir, error, keyAccess);
  // The parsed document is large (tens of MB for thousands of services) and wanted only for
  // an error's line: kept while loading, afterwards parsed again from the text when asked.
  kept = undefined;
  loading = false;
  return {
    file,
    baseDir,
    raw,
    stateDir: resolve(baseDir, raw.state_dir),
    lineOf,
    error,
    warnings,
    keyAccess,
    installs,
  };
}

/** A port is a number or {port, protocol}: report what is wrong inside the form that was
 *  written (an unknown protocol, a port out of range), not that neither form matched. */
function portEntryIssue(issue: z.core.$ZodIssue, data: unknown): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union' || issue.path.at(-2) !== 'ports') return issue;
  const value = issue.path.reduce<unknown>(
    (v, k) =>
      v && typeof v === 'object'
        ? (v as Record<PropertyKey, unknown>)[k as PropertyKey]
        : undefined,
    data,
  );
  const inner = issue.errors[value !== null && typeof value === 'object' ? 1 : 0]?.[0];
  return inner ? { ...inner, path: [...issue.path, ...inner.path] } : issue;
}

/** Each service's host in A-label form; a host no DANE client can look up is refused at its line. */
function normaliseHosts(raw: RawConfig, error: (p: ConfigPath, m: string) => InputError): void {
  for (const [name, svc] of Object.entries(raw.services)) {
    try {
      svc.host = parseHost(svc.host).ascii;
    } catch (e) {
      if (e instanceof HostError) throw error(['services', name, 'host'], e.message);
      throw e;
    }
  }
}

/** The `yaml` document of the text, its syntax errors and duplicate keys thrown at their line. */
function parseChecked(text: string, file: string): { doc: Document; lineCounter: LineCounter } {
  const lineCounter = new LineCounter();
  // yaml's own duplicate-key check compares each key with every earlier one of its mapping,
  // quadratic in a fleet's thousands of services: the same check, with a Set, is done here.
  const doc = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: false });
  const duplicate = firstDuplicateKey(doc);
  if (doc.errors.length || duplicate !== undefined) {
    const first = doc.errors[0];
    const err =
      duplicate !== undefined && (!first || duplicate < first.pos[0])
        ? { pos: [duplicate], message: 'Map keys must be unique' }
        : first!;
    const pos = lineCounter.linePos(err.pos[0]!);
    throw new InputError(
      `YAML syntax error: ${err.message.split('\n')[0]} (column ${pos.col})`,
      file,
      pos.line,
    );
  }
  return { doc, lineCounter };
}

function reparse(text: string): { doc: Document; lineCounter: LineCounter } {
  const lineCounter = new LineCounter();
  return { doc: parseDocument(text, { lineCounter, uniqueKeys: false }), lineCounter };
}

function lineOfPath(doc: Document, lc: LineCounter, path: ConfigPath): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const sub = path.slice(0, n);
    const node = (sub.length ? doc.getIn(sub, true) : doc.contents) as Node | undefined;
    if (node?.range) {
      // For a mapping key that exists, point at the key line rather than a nested value.
      if (n > 0) {
        const parent = (n > 1 ? doc.getIn(sub.slice(0, -1), true) : doc.contents) as
          | Node
          | undefined;
        if (parent && isMap(parent)) {
          const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === sub.at(-1));
          const keyNode = pair?.key as Node | undefined;
          if (keyNode?.range) return lc.linePos(keyNode.range[0]).line;
        }
        if (parent && isSeq(parent)) return lc.linePos(node.range[0]).line;
      }
      return lc.linePos(node.range[0]).line;
    }
  }
  return undefined;
}

const ACME_SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** `${NAME}` from the environment; `key_file: PATH` becomes `key: <file content>`. Both are
 *  registered as secrets so they are redacted from every message. `path` is where `value`
 *  stands, a stack this walk pushes to and pops (copied only for an error): a fleet's config has
 *  hundreds of thousands of values. */
function resolveSecrets(
  value: unknown,
  path: ConfigPath,
  error: (p: ConfigPath, m: string) => InputError,
  warnings: string[],
  baseDir: string,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    return value.replace(ENV_REF, (_m, name: string) => {
      const v = process.env[name];
      if (v === undefined) throw error([...path], `environment variable ${name} is not set`);
      registerSecret(v);
      return v;
    });
  }
  // Copied only where something changed: most values hold no secret, and a fleet's config
  // has hundreds of thousands of them.
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const r = resolveSecrets(value[i], path, error, warnings, baseDir);
      path.pop();
      if (r !== value[i]) {
        out ??= [...value];
        out[i] = r;
      }
    }
    return out ?? value;
  }
  if (value && typeof value === 'object') {
    const inProviderOptions = path[0] === 'providers' && path.length === 2;
    const inEab = path[0] === 'services' && path[2] === 'acme' && path[3] === 'eab';
    const keys = Object.keys(value);
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const v = (value as Record<string, unknown>)[k];
      path.push(k);
      let key = k;
      let r: unknown;
      if ((inProviderOptions || inEab) && k.endsWith('_file') && typeof v === 'string') {
        key = k.slice(0, -'_file'.length);
        r = secretFile(
          resolve(baseDir, resolveSecrets(v, path, error, warnings, baseDir) as string),
          path,
          error,
          warnings,
        );
      } else {
        r = resolveSecrets(v, path, error, warnings, baseDir);
      }
      path.pop();
      if (!out && (key !== k || r !== v)) {
        // The first change: a copy of the keys before it, in their order.
        out = {};
        for (let j = 0; j < i; j++) out[keys[j]!] = (value as Record<string, unknown>)[keys[j]!];
      }
      if (out) out[key] = r;
    }
    return out ?? value;
  }
  return value;
}

/** The content of a `*_file` secret at `path`, registered as a secret. */
function secretFile(
  p: string,
  path: ConfigPath,
  error: (p: ConfigPath, m: string) => InputError,
  warnings: string[],
): string {
  let content: string;
  try {
    content = readInputText(p, { what: 'secret file', maxBytes: MAX_SECRET_BYTES }).trim();
    const mode = statSync(p).mode & 0o077;
    if (mode)
      warnings.push(`${p} (${path.join('.')}) is readable by group or others; chmod 600 it`);
  } catch (e) {
    throw error(
      [...path],
      `cannot read secret file ${p}: ${e instanceof InputFileError ? e.reason : errnoCode(e)}`,
    );
  }
  registerSecret(content);
  return content;
}

/** Offset of the first key that repeats an earlier key of its mapping (as yaml's uniqueKeys:
 *  scalar keys by value), or undefined. */
function firstDuplicateKey(doc: Document): number | undefined {
  let first: number | undefined;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const { key } of map.items) {
        if (!isScalar(key)) continue;
        const at = key.range?.[0];
        if (!seen.has(key.value)) seen.add(key.value);
        else if (at !== undefined && (first === undefined || at < first)) first = at;
      }
    },
  });
  return first;
}
