/** The configuration checked against its schema, quickly for a fleet: thousands of services
 *  are usually written alike but for their host, and a service written as an earlier one was
 *  (apart from its host) gets a copy of that one's checked value with its own host, instead of
 *  being checked again (the schema's checks of a service do not depend on the host's text,
 *  only on it being a non-empty string). Whatever fails takes the whole schema's way, so that
 *  every error is the one it always was. */
import { configSchema, service, type RawConfig, type RawService } from './schema.js';

/** jitless: zod would first generate (new Function) a parser that pays off only over many
 *  parses; a CLI parses once, and that code is never in the code cache (launcher.ts). */
const JITLESS = { jitless: true } as const;

/** How many distinct kinds of service are remembered (most recent first). */
const KINDS_KEPT = 4;

type Plain = Record<string, unknown>;

export function checkConfig(data: Plain): ReturnType<typeof configSchema.safeParse> {
  const quick = quickCheck(data);
  if (quick) return { success: true, data: quick };
  return configSchema.safeParse(data, JITLESS);
}

function isPlain(v: unknown): v is Plain {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** The checked config when everything in it is valid, else undefined. */
function quickCheck(data: Plain): RawConfig | undefined {
  const services = data.services;
  if (!isPlain(services)) return undefined;
  const rest = configSchema.safeParse({ ...data, services: {} }, JITLESS);
  if (!rest.success) return undefined;
  const checked: Record<string, RawService> = {};
  const kinds: { input: Plain; output: RawService }[] = [];
  for (const name of Object.keys(services)) {
    if (name === '__proto__') return undefined;
    const svc = services[name];
    const host = isPlain(svc) && typeof svc.host === 'string' && svc.host !== '' ? svc.host : '';
    const kind = host ? kinds.find((k) => alikeButHost(k.input, svc as Plain)) : undefined;
    if (kind) {
      const copy = copyOf(kind.output) as RawService;
      copy.host = host;
      checked[name] = copy;
      continue;
    }
    const parsed = service.safeParse(svc, JITLESS);
    if (!parsed.success) return undefined;
    checked[name] = parsed.data;
    if (host) {
      kinds.unshift({ input: svc as Plain, output: copyOf(parsed.data) as RawService });
      kinds.length = Math.min(kinds.length, KINDS_KEPT);
    }
  }
  rest.data.services = checked;
  return rest.data;
}

/** Two services with the same keys and the same values, host apart. */
function alikeButHost(a: Plain, b: Plain): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    if (!Object.hasOwn(b, k)) return false;
    if (k !== 'host' && !same(a[k], b[k])) return false;
  }
  return true;
}

/** Equal plain data (what a YAML document reads into). */
function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (isPlain(a) && isPlain(b)) {
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    for (const k of keys) if (!Object.hasOwn(b, k) || !same(a[k], b[k])) return false;
    return true;
  }
  return false;
}

/** A deep copy of checked plain data: no two services share a part that one could change. */
function copyOf(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(copyOf);
  if (v !== null && typeof v === 'object') {
    const out: Plain = {};
    for (const k of Object.keys(v)) out[k] = copyOf((v as Plain)[k]);
    return out;
  }
  return v;
}
