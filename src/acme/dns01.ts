/** DNS-01 answers (RFC 8555 §8.4) through a provider's TXT capability: every value of the
 *  order is written first (one flush), the challenge is answered only once every authoritative
 *  server serves them all, and they are removed afterwards whatever happened to the order,
 *  also on SIGINT/SIGTERM. Each value is recorded in the state directory before it is written
 *  and forgotten once removed, so a removal that fails (or a killed run) is finished by the
 *  next run. */
import type { DnsProvider, TxtRecords } from '../../providers/index.js';
import type { DnsServer } from '../verify/dns.js';
import type { ChallengeSolver } from './challenges.js';
import { dropPendingTxt, readPendingTxt, recordPendingTxt } from './dns01-leftovers.js';
import { valuesByOwner } from './dns01-values.js';
import { waitForTxt } from './dns01-wait.js';

export interface Dns01Setup {
  /** "acme(mx)", for errors. */
  who: string;
  /** The provider instance's name in the config, and the instance (it has `txt`). */
  providerName: string;
  provider: DnsProvider & { txt: TxtRecords };
  ttl: number;
  timeoutMs: number;
  /** verify.propagation: false skips the wait (the operator chose not to ask the servers). */
  propagation: boolean;
  resolver: DnsServer;
  authoritativePort: number;
  /** dns01-leftovers.ts's file for the service. */
  pendingFile: string;
  progress?: (line: string) => void;
}

const warn = (s: Pick<Dns01Setup, 'progress'>, line: string) => s.progress?.(`warning: ${line}`);

/** Remove values at one owner, then forget them; a failure is said and stays recorded. */
async function removeRecorded(
  s: Pick<Dns01Setup, 'providerName' | 'pendingFile' | 'progress'>,
  txt: TxtRecords,
  owner: string,
  values: string[],
): Promise<boolean> {
  try {
    await txt.remove(owner, values);
    await txt.flush?.();
    dropPendingTxt(s.pendingFile, s.providerName, owner, values);
    return true;
  } catch (e) {
    warn(
      s,
      `the DNS-01 TXT record(s) at ${owner} could not be removed through provider "${s.providerName}": ${(e as Error).message}; they are recorded in ${s.pendingFile} and the next renew removes them`,
    );
    return false;
  }
}

export function dns01Solver(s: Dns01Setup): ChallengeSolver {
  const txt = s.provider.txt;
  const written = new Map<string, string[]>();
  let closing: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    unlisten();
    // Take the values away, then die of the same signal as if it had not been caught; unless
    // someone else listens (the daemon stops in its own way).
    void close().finally(() => {
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  const unlisten = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const close = (): Promise<void> => {
    unlisten();
    closing ??= (async () => {
      for (const [owner, values] of written) await removeRecorded(s, txt, owner, values);
      written.clear();
    })();
    return closing;
  };
  return {
    type: 'dns-01',
    async publish(answers) {
      const byOwner = valuesByOwner(answers);
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      for (const [owner, values] of byOwner) {
        recordPendingTxt(s.pendingFile, {
          provider: s.providerName,
          owner,
          values,
          since: new Date().toISOString(),
        });
        written.set(owner, values);
        await txt.add(owner, values, s.ttl);
      }
      await txt.flush?.();
      const count = [...byOwner.values()].reduce((n, v) => n + v.length, 0);
      const owners = [...byOwner.keys()].join(', ');
      if (!s.propagation) {
        s.progress?.(
          `DNS-01: ${count} TXT value(s) written at ${owners}; not waiting for the authoritative servers (verify.propagation: false)`,
        );
        return;
      }
      s.progress?.(
        `DNS-01: ${count} TXT value(s) written at ${owners}; waiting until every authoritative server serves them`,
      );
      await waitForTxt(byOwner, {
        who: s.who,
        resolver: s.resolver,
        port: s.authoritativePort,
        timeoutMs: s.timeoutMs,
        ...(s.progress ? { progress: s.progress } : {}),
      });
    },
    close,
  };
}

/** Values an earlier run could not remove (or was killed before removing): removed now. Those
 *  of a provider no longer in the config stay recorded, with a warning. */
export async function removeLeftoverTxt(
  pendingFile: string,
  providerOf: (name: string) => Promise<DnsProvider | undefined>,
  progress?: (line: string) => void,
): Promise<void> {
  for (const p of readPendingTxt(pendingFile)) {
    const provider = await providerOf(p.provider);
    const setup = { providerName: p.provider, pendingFile, ...(progress ? { progress } : {}) };
    if (!provider?.txt) {
      warn(
        setup,
        `DNS-01 TXT record(s) at ${p.owner} from ${p.since} are recorded in ${pendingFile} for provider "${p.provider}", which cannot remove them now; remove them by hand and delete the file`,
      );
      continue;
    }
    if (await removeRecorded(setup, provider.txt, p.owner, p.values))
      progress?.(`DNS-01: removed the TXT record(s) an earlier run left at ${p.owner}`);
  }
}
