/**
 * exec: anything else. Runs a program of yours for each operation, with one JSON request on
 * stdin and (for list) a JSON answer on stdout.
 *
 * Credentials: whatever your program needs, from its own environment or files; tlsa passes
 *              its environment through and adds nothing.
 * Options:     command (required: an argv array, or a string run by /bin/sh -c),
 *              timeout_s (30). Unknown options are refused.
 * Requests:    {"action":"list","type":"TLSA","owner":"_25._tcp.mx.example.org."}
 *                → stdout {"records":["3 1 1 <hex>", …]}  (or objects {usage,selector,matching,data})
 *              {"action":"apply","type":"TLSA","owner":…,"ttl":3600,"add":["3 1 1 <hex>"],"remove":[…]}
 *                → exit 0 when exactly these records were added and removed, others untouched.
 *              TXT (ACME DNS-01; actions of their own, so that a program written before them
 *              can never take one for a TLSA change): values are the TXT texts, unquoted.
 *              {"action":"txt-list","type":"TXT","owner":"_acme-challenge.mx.example.org."}
 *              {"action":"txt-add","type":"TXT","owner":…,"ttl":300,"values":["<text>", …]}
 *                (values already there stay once; others at the owner stay)
 *              {"action":"txt-remove","type":"TXT","owner":…,"values":[…]}
 *                (only these values go; absent ones are no error)
 *                → each answers stdout {"values":[…]}: the TXT values at the owner afterwards.
 *                tlsa checks that answer, so a program that does not know these actions (and
 *                exits 0 saying nothing) fails clearly instead of seeming to work; such a
 *                program should exit 64 (EX_USAGE) on an action it does not know.
 * Your program must keep the provider contract (providers/contract.ts): apply the adds before
 *              the removes (or both in one transaction), so that an exit in between leaves the
 *              new records beside the old ones, never a name without either; give added records
 *              `ttl`, and leave the TTL of the RRset as it is when `add` is empty. When the
 *              configured TTL changes, tlsa sends an apply whose `add` names records that are
 *              already there, with the new `ttl`: set the RRset's TTL to it (every TLSA record
 *              at the owner). tlsa never sends a record in both `add` and `remove` (such a
 *              record is kept: it is left out of `remove`).
 * Exit codes:  0 done; 75 (EX_TEMPFAIL) try again later: retried with backoff; any other
 *              code fails, with the program's last stderr lines in the message (a CNAME at
 *              the owner name, for instance, should be reported that way, never overwritten).
 * Limits:      one process per operation; the engine's lock serialises tlsa's own runs.
 */
import { spawn } from 'node:child_process';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { withRetry } from '../src/util/retry.js';
import { redact } from '../src/util/redact.js';
import { ProviderError, type DnsProvider, type ProviderFactory } from './contract.js';
import { effectiveChange } from './kit.js';
import { readOptions } from './options.js';
import { EXEC_OPTIONS } from './exec-options.js';
import { execTxt } from './exec-txt.js';

const EX_TEMPFAIL = 75;

class ExecFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(EXEC_OPTIONS, options, ctx);
  const command = opt.command;
  const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
  const timeout = opt.timeout_s;
  const name = `exec(${ctx.instance})`;
  const [program, ...args] = argv as string[];

  function run(request: object): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(program!, args, { cwd: ctx.baseDir, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new ExecFailure(`${program} did not finish within ${timeout} s`, true));
      }, timeout * 1000);
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(
          new ExecFailure(
            `cannot run ${program}: ${(e as NodeJS.ErrnoException).code ?? e.message}`,
            false,
          ),
        );
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) return resolve(stdout);
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        reject(
          new ExecFailure(
            `${program} exited with ${code}${tail ? `: ${tail}` : ''}`,
            code === EX_TEMPFAIL,
          ),
        );
      });
      child.stdin.on('error', () => {
        /* the program may exit without reading; its exit code tells */
      });
      child.stdin.end(JSON.stringify(request));
    });
  }

  const call = (request: object) =>
    withRetry(() => run(request), {
      attempts: 4,
      isRetryable: (e) => e instanceof ExecFailure && e.retryable,
    }).catch((e: Error) => {
      throw new ProviderError(name, redact(e.message));
    });

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      const out = await call({ action: 'list', type: 'TLSA', owner: o });
      let parsed: { records?: unknown };
      try {
        parsed = JSON.parse(out || '{}') as { records?: unknown };
      } catch {
        throw new ProviderError(
          name,
          `list answered with something that is not JSON: ${out.slice(0, 80)}`,
        );
      }
      if (!Array.isArray(parsed.records))
        throw new ProviderError(name, 'list must answer {"records": [...]}');
      return parsed.records.map((r): TlsaRecord => {
        try {
          if (typeof r === 'string') return { owner: o, ...parseRdata(r) };
          const x = r as Record<string, unknown>;
          return { owner: o, ...parseRdata(`${x.usage} ${x.selector} ${x.matching} ${x.data}`) };
        } catch (e) {
          throw new ProviderError(
            name,
            `list returned a record tlsa cannot read (${JSON.stringify(r).slice(0, 60)}): ${(e as Error).message}`,
          );
        }
      });
    },
    async apply(owner, change, ttl) {
      const o = normaliseName(owner);
      const { add, remove } = effectiveChange(change);
      await call({
        action: 'apply',
        type: 'TLSA',
        owner: o,
        ttl,
        add: add.map(rdataText),
        remove: remove.map(rdataText),
      });
    },
    txt: execTxt(name, call),
  };
  return provider;
};
