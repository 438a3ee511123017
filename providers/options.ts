/** Reading a provider's options block: unknown keys are refused at their config line, and
 *  each value is checked for its type, so every provider reports option errors the same way. */
import type { ProviderContext } from './index.js';

export interface OptionReader {
  /** A non-empty string (trimmed), the fallback, or undefined. */
  string(key: string, fallback?: string): string | undefined;
  /** A number within bounds, or the fallback. */
  number(key: string, fallback: number, bounds?: { min?: number; max?: number; integer?: boolean; above?: number }): number;
}

export function readOptions(options: Record<string, unknown>, ctx: ProviderContext, provider: string, known: readonly string[]): OptionReader {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      throw ctx.optionError(k, `${provider} has no option "${k}" (known: ${known.join(', ')}; secrets as <option>_file: PATH or \${ENV_VAR})`);
    }
  }
  return {
    string(key, fallback) {
      const v = options[key] ?? fallback;
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || !v.trim()) throw ctx.optionError(key, `"${key}" must be a non-empty string`);
      return v.trim();
    },
    number(key, fallback, b = {}) {
      const v = options[key] ?? fallback;
      const ok = typeof v === 'number' && Number.isFinite(v)
        && (b.integer ? Number.isInteger(v) : true)
        && (b.min === undefined || v >= b.min) && (b.max === undefined || v <= b.max) && (b.above === undefined || v > b.above);
      if (!ok) {
        const range = [b.above !== undefined ? `> ${b.above}` : '', b.min !== undefined ? `≥ ${b.min}` : '', b.max !== undefined ? `≤ ${b.max}` : ''].filter(Boolean).join(' and ');
        throw ctx.optionError(key, `"${key}" must be a${b.integer ? ' whole' : ''} number${range ? ` ${range}` : ''}`);
      }
      return v as number;
    },
  };
}
