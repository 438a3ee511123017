/** Reading a provider's options block: unknown keys are refused at their config line, and
 *  each value is checked for its type, so every provider reports option errors the same way. */
import type { ProviderContext } from './contract.js';

export interface OptionReader {
  /** A non-empty string (trimmed), the fallback, or undefined. */
  string(key: string, fallback?: string): string | undefined;
  /** A number within bounds, or the fallback. */
  number(
    key: string,
    fallback: number,
    bounds?: { min?: number; max?: number; integer?: boolean; above?: number },
  ): number;
}

export function readOptions(
  options: Record<string, unknown>,
  ctx: ProviderContext,
  provider: string,
  known: readonly string[],
): OptionReader {
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      const near = nearest(k, known);
      throw ctx.optionError(
        k,
        `${provider} has no option "${k}"${near ? `; did you mean "${near}"?` : ''} (known: ${known.join(', ')}; secrets as <option>_file: PATH or \${ENV_VAR})`,
      );
    }
  }
  return {
    string(key, fallback) {
      const v = options[key] ?? fallback;
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string' || !v.trim())
        throw ctx.optionError(key, `"${key}" must be a non-empty string`);
      return v.trim();
    },
    number(key, fallback, b = {}) {
      const v = options[key] ?? fallback;
      const ok =
        typeof v === 'number' &&
        Number.isFinite(v) &&
        (b.integer ? Number.isInteger(v) : true) &&
        (b.min === undefined || v >= b.min) &&
        (b.max === undefined || v <= b.max) &&
        (b.above === undefined || v > b.above);
      if (!ok) {
        const range = [
          b.above !== undefined ? `> ${b.above}` : '',
          b.min !== undefined ? `≥ ${b.min}` : '',
          b.max !== undefined ? `≤ ${b.max}` : '',
        ]
          .filter(Boolean)
          .join(' and ');
        throw ctx.optionError(
          key,
          `"${key}" must be a${b.integer ? ' whole' : ''} number${range ? ` ${range}` : ''}`,
        );
      }
      return v as number;
    },
  };
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
