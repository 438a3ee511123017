/** What the config-driven commands share: finding the config, options, rendering records. */
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import type { RunOptions } from '../engine/reconcile.js';
import { rdataText, type TlsaRecord } from '../tlsa/record.js';
import { progressLine, warn } from './fail.js';
import type { CliValues } from './options.js';

export const DEFAULT_CONFIG = '/etc/tlsa/config.yaml';

export function configFromCli(v: CliValues): LoadedConfig {
  const file = v.config ?? process.env.TLSA_CONFIG ?? DEFAULT_CONFIG;
  const config = loadConfig(file);
  warn(config.warnings);
  return config;
}

export function runOptions(v: CliValues, entryPoint: string): RunOptions {
  let lockWaitSeconds: number | undefined;
  if (v['lock-wait'] !== undefined) {
    lockWaitSeconds = Number(v['lock-wait']);
    if (!Number.isFinite(lockWaitSeconds) || lockWaitSeconds < 0)
      throw new InputError(`--lock-wait must be a number of seconds, got "${v['lock-wait']}"`);
  }
  return {
    entryPoint,
    ...(v.service ? { services: v.service } : {}),
    ...(v.force ? { force: true } : {}),
    ...(lockWaitSeconds !== undefined ? { lockWaitSeconds } : {}),
    progress: progressLine,
  };
}

/** `3 1 1 0123456789ab…` — enough to tell records apart at a glance. */
export function shortRdata(r: TlsaRecord): string {
  const t = rdataText(r);
  return t.length > 26 ? `${t.slice(0, 25)}…` : t;
}

export function age(fromIso: string | Date, now: Date): string {
  return duration((now.getTime() - new Date(fromIso).getTime()) / 1000);
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
