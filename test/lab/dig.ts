/**
 * A small wrapper around `kdig` (knot-dnsutils), independent of the code under test.
 * Knot 3.2's kdig has no +json, so the default text output is parsed:
 *   ;; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 38507
 *   ;; Flags: qr aa rd; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 1
 *   ;; ANSWER SECTION:
 *   mx.example.test.    	300	IN	A	127.0.0.1
 */
import { execFile } from 'node:child_process';
import { toolPath } from './lab.js';

export interface QueryOptions {
  server: string;
  port: number;
  name: string;
  type: string;
  /** Set the DO bit (+dnssec): RRSIGs come back and a validating resolver sets AD. */
  dnssec?: boolean;
  tcp?: boolean;
  /** Ask for recursion (default true; irrelevant for an authoritative server). */
  recurse?: boolean;
  /** Set CD (+cdflag): a validating resolver answers even when validation fails. */
  cd?: boolean;
  /** Per-try timeout in seconds (default 2) and retries (default 1). */
  timeoutS?: number;
  retries?: number;
}

export interface AnswerRecord {
  owner: string;
  ttl: number;
  class: string;
  type: string;
  /** RDATA as kdig prints it (kdig prints TLSA hex in upper case). */
  rdata: string;
}

export interface QueryResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... */
  rcode: string;
  /** Header flags in lower case, e.g. ['qr', 'rd', 'ra', 'ad']. */
  flags: string[];
  /** Answer-section lines with whitespace collapsed to single spaces (RRSIGs included). */
  answers: string[];
  records: AnswerRecord[];
  /** kdig's full output, for error messages. */
  raw: string;
}

function run(
  bin: string,
  args: string[],
  timeoutMs: number,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolveRun) => {
    execFile(
      bin,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolveRun({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
  });
}

/** Parse kdig's default text output. Throws when there is no response header. */
export function parseKdig(text: string): QueryResult {
  const header = /->>HEADER<<-.*?status:\s*([A-Z0-9]+)/.exec(text);
  if (!header) throw new Error(`kdig: no response\n${text.trim()}`);
  const flagsLine = /^;;\s*Flags:\s*([^;]*);/m.exec(text);
  const flags = (flagsLine?.[1] ?? '')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((f) => f.toLowerCase());
  const answers: string[] = [];
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^;;\s*ANSWER SECTION:/.test(l));
  if (start >= 0) {
    for (const line of lines.slice(start + 1)) {
      if (!line.trim() || line.startsWith(';;')) break;
      answers.push(line.trim().replace(/\s+/g, ' '));
    }
  }
  const records = answers.map((a): AnswerRecord => {
    const [owner = '', ttl = '0', cls = '', type = '', ...rest] = a.split(' ');
    return {
      owner: owner.toLowerCase(),
      ttl: Number(ttl),
      class: cls,
      type: type.toUpperCase(),
      rdata: rest.join(' '),
    };
  });
  return { rcode: header[1]!, flags, answers, records, raw: text };
}

/** One query with kdig. Rejects when kdig gets no answer at all (timeout, refused connection). */
export async function query(opts: QueryOptions): Promise<QueryResult> {
  const kdig = toolPath('kdig', 'knot-dnsutils');
  const timeoutS = opts.timeoutS ?? 2;
  const retries = opts.retries ?? 1;
  const args = [
    `@${opts.server}`,
    '-p',
    String(opts.port),
    opts.name,
    opts.type,
    `+timeout=${timeoutS}`,
    `+retry=${retries}`,
    opts.recurse === false ? '+norecurse' : '+recurse',
    '+nomultiline',
  ];
  if (opts.dnssec) args.push('+dnssec');
  if (opts.tcp) args.push('+tcp');
  if (opts.cd) args.push('+cdflag');
  const { stdout, stderr, code } = await run(kdig, args, (timeoutS * (retries + 1) + 5) * 1000);
  try {
    return parseKdig(stdout);
  } catch {
    throw new Error(
      `kdig ${args.join(' ')} failed (exit ${code}): ${(stdout + stderr).trim().slice(-1000)}`,
    );
  }
}

/** The RDATA of the answer records of one type, e.g. TLSA RDATA lower-cased for comparison. */
export function rdataOf(result: QueryResult, type: string): string[] {
  return result.records.filter((r) => r.type === type.toUpperCase()).map((r) => r.rdata);
}
