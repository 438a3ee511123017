/** DNS-01 (RFC 8555 §8.4) without I/O: where each TXT value goes, and which authoritative
 *  server addresses do not serve them yet. */
import { normaliseName } from '../tlsa/record.js';
import { type AuthoritativeAnswer, answerLabel } from '../verify/authoritative.js';
import type { ChallengeAnswer } from './challenges.js';

/** `_acme-challenge.NAME.`; a wildcard's authorization names the base name already. */
export function challengeOwner(name: string): string {
  return normaliseName(`_acme-challenge.${name.replace(/^\*\./, '')}`);
}

/** The TXT values of an order by owner name: a wildcard and its base name share one owner. */
export function valuesByOwner(answers: readonly ChallengeAnswer[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const a of answers) {
    const owner = challengeOwner(a.name);
    const values = out.get(owner) ?? [];
    if (!values.includes(a.keyAuthorization)) values.push(a.keyAuthorization);
    out.set(owner, values);
  }
  return out;
}

/** The server addresses (labelled) that do not serve every value at the owner, and why. A
 *  value is served when an answer's TXT RRset has it as its whole text. */
export function laggingServers(answers: readonly AuthoritativeAnswer[], values: readonly string[]) {
  if (!answers.length) return ['no authoritative server found'];
  const out: string[] = [];
  for (const a of answers) {
    if (a.error !== undefined || a.rdata === undefined) {
      out.push(`${answerLabel(a)}: ${a.error ?? 'no answer'}`);
      continue;
    }
    // rdataString() gives each TXT record as its JSON-quoted strings.
    const served = new Set(a.rdata);
    const missing = values.filter((v) => !served.has(JSON.stringify(v)));
    if (missing.length)
      out.push(`${answerLabel(a)} lacks ${missing.length} of ${values.length} value(s)`);
  }
  return out;
}
