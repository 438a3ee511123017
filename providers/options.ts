/** A provider's options, declared once: the declaration checks an options block when the
 *  provider is created (unknown keys refused at their config line, with a "did you mean"; each
 *  value checked for its type), and it writes the provider's part of the JSON Schema and of the
 *  options reference (docs/providers-options.md). Declarations live in providers/<type>-options.ts,
 *  which import nothing heavy (this module and the small data they name), so that the config
 *  schema can list every provider's options without loading an adapter or its SDK. */
import { registerSecret } from '../src/util/redact.js';

interface Common {
  /** One line for the reference and for editors (the JSON Schema's description). */
  doc: string;
  /** The whole message when the option is missing; without it the option is optional. */
  required?: string;
  /** The whole message when the value has the wrong type or range (default: a generic one). */
  invalid?: string;
}

export interface StringOption extends Common {
  type: 'string';
  default?: string;
  /** The allowed values, when there are few. */
  oneOf?: readonly string[];
  /** Accepts `<option>_file: PATH` (read at config load), and is redacted from every message. */
  secret?: boolean;
}

export interface NumberOption extends Common {
  type: 'number';
  default: number;
  integer?: boolean;
  min?: number;
  max?: number;
  /** Exclusive lower bound: "> above". */
  above?: number;
}

export interface BooleanOption extends Common {
  type: 'boolean';
  default: boolean;
}

/** A program to run: an argv list of non-empty strings, or a string for /bin/sh -c. */
export interface CommandOption extends Common {
  type: 'command';
}

export type OptionSpec = StringOption | NumberOption | BooleanOption | CommandOption;

export interface ProviderOptions {
  /** The provider type, as written in `type:` and in messages. */
  provider: string;
  /** In the order messages and the reference list them. */
  options: Readonly<Record<string, OptionSpec>>;
}

/** `settle_ms`, for APIs without a conditional write: the provider writes, waits this long and
 *  reads back to catch a concurrent writer (powerdns, desec). */
export const SETTLE_MS_OPTION = {
  type: 'number',
  default: 250,
  min: 0,
  doc: 'Pause before reading a write back (catches a concurrent writer)',
} as const satisfies NumberOption;

type ValueOf<S> = S extends { type: 'number' }
  ? number
  : S extends { type: 'boolean' }
    ? boolean
    : S extends { type: 'command' }
      ? string | string[]
      : string;

type AlwaysSet<S> = S extends { default: unknown }
  ? true
  : S extends { required: string }
    ? true
    : false;

/** The checked values: options with a default or required are always there. */
export type OptionValues<D extends ProviderOptions> = {
  -readonly [K in keyof D['options']]: AlwaysSet<D['options'][K]> extends true
    ? ValueOf<D['options'][K]>
    : ValueOf<D['options'][K]> | undefined;
};

/** Where an option error is reported: the provider context points at the config line. */
export interface OptionErrorReporter {
  optionError(key: string, message: string): Error;
}

/** The options block checked against the declaration: every key known, every value of its type
 *  (strings trimmed), defaults filled in, secrets registered for redaction. */
export function readOptions<D extends ProviderOptions>(
  declaration: D,
  options: Record<string, unknown>,
  ctx: OptionErrorReporter,
): OptionValues<D> {
  const { provider } = declaration;
  const known = Object.keys(declaration.options);
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      const near = nearest(k, known);
      throw ctx.optionError(
        k,
        `${provider} has no option "${k}"${near ? `; did you mean "${near}"?` : ''} (known: ${known.join(', ')}; secrets as <option>_file: PATH or \${ENV_VAR})`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(declaration.options)) {
    const given = options[key];
    if (given === undefined || given === null) {
      if (spec.required) throw ctx.optionError(key, spec.required);
      if ('default' in spec) out[key] = spec.default;
      continue;
    }
    const value = checkValue(key, spec, given);
    if (value === undefined) throw ctx.optionError(key, spec.invalid ?? expected(key, spec));
    if (spec.type === 'string' && spec.secret) registerSecret(value as string);
    out[key] = value;
  }
  return out as OptionValues<D>;
}

/** The value as the provider gets it, or undefined when it does not fit the declaration. */
function checkValue(key: string, spec: OptionSpec, v: unknown): unknown {
  switch (spec.type) {
    case 'string': {
      if (typeof v !== 'string' || !v.trim()) return undefined;
      const s = v.trim();
      return spec.oneOf && !spec.oneOf.includes(s) ? undefined : s;
    }
    case 'number':
      return typeof v === 'number' &&
        Number.isFinite(v) &&
        (!spec.integer || Number.isInteger(v)) &&
        (spec.min === undefined || v >= spec.min) &&
        (spec.max === undefined || v <= spec.max) &&
        (spec.above === undefined || v > spec.above)
        ? v
        : undefined;
    case 'boolean':
      return typeof v === 'boolean' ? v : undefined;
    case 'command':
      if (typeof v === 'string') return v.length > 0 ? v : undefined;
      return Array.isArray(v) &&
        v.length > 0 &&
        v.every((a) => typeof a === 'string' && a.length > 0)
        ? v
        : undefined;
    default:
      throw new Error(`option ${key}: unknown declaration ${(spec as { type: string }).type}`);
  }
}

function expected(key: string, spec: OptionSpec): string {
  switch (spec.type) {
    case 'string':
      return spec.oneOf
        ? `"${key}" must be one of ${spec.oneOf.join(', ')}`
        : `"${key}" must be a non-empty string`;
    case 'number': {
      const range = [
        spec.above !== undefined ? `> ${spec.above}` : '',
        spec.min !== undefined ? `≥ ${spec.min}` : '',
        spec.max !== undefined ? `≤ ${spec.max}` : '',
      ]
        .filter(Boolean)
        .join(' and ');
      return `"${key}" must be a${spec.integer ? ' whole' : ''} number${range ? ` ${range}` : ''}`;
    }
    case 'boolean':
      return `"${key}" must be true or false`;
    case 'command':
      return `"${key}" must be an argv list of non-empty strings or a shell command string`;
  }
}

/** The known key a typo most likely meant (`relaod` → `reload`): at most two edits away,
 *  a swap of neighbours counting as one. */
function nearest(key: string, known: readonly string[]): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d <= 2 && d < key.length && (!best || d < best.d)) best = { k, d };
  }
  return best?.k;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
