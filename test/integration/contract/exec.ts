/** Contract target: the exec provider driving test/fixtures/exec-provider.mjs, a small JSON-file
 *  backend; readDirect reads that file itself. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createProvider } from '../../../providers/exec.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import type { ContractTarget } from './suite.js';

const script = resolve(
  import.meta.dirname ?? new URL('.', import.meta.url).pathname,
  '../../fixtures/exec-provider.mjs',
);

export const execTarget: ContractTarget = {
  name: 'exec (a JSON-file backend script)',
  tools: [],
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-contract-exec-'));
    const store = join(dir, 'store.json');
    const make = (token: string) => {
      const command = `STORE='${store}' EXEC_TOKEN='${token}' exec node '${script}'`;
      return createProvider(
        { command },
        { instance: 'contract', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
      );
    };
    const db = () =>
      (existsSync(store)
        ? JSON.parse(readFileSync(store, 'utf8'))
        : { zones: ['example.test.'], rrsets: {} }) as {
        zones: string[];
        rrsets: Record<
          string,
          { TLSA?: string[]; TTL?: number; CNAME?: string; TXT?: string[]; TXTTTL?: number }
        >;
      };
    const save = (d: ReturnType<typeof db>) => writeFileSync(store, JSON.stringify(d));
    return {
      zone: 'example.test.',
      provider: () => make('good-token'),
      badCredentials: () => make('wrong-token-value'),
      unknownZone: () => ({
        provider: make('good-token'),
        owner: '_25._tcp.mx.unknown-zone.test.',
      }),
      secrets: ['wrong-token-value'],
      throttleOnce: () => writeFileSync(`${store}.throttle`, ''),
      failWritesFrom(n: number) {
        writeFileSync(`${store}.fail-after`, String(n - 1));
        return () => rmSync(`${store}.fail-after`, { force: true });
      },
      async addForeign(owner: string, r: TlsaRecord, ttl: number) {
        const d = db();
        const set = d.rrsets[owner] ?? {};
        d.rrsets[owner] = {
          ...set,
          TLSA: [...(set.TLSA ?? []), rdataText(r)],
          TTL: set.TTL ?? ttl,
        };
        save(d);
      },
      async addCname(owner: string, target: string) {
        const d = db();
        d.rrsets[owner] = { CNAME: target };
        save(d);
      },
      txt: {
        async addForeign(owner: string, value: string, ttl: number) {
          const d = db();
          const set = d.rrsets[owner] ?? {};
          d.rrsets[owner] = {
            ...set,
            TXT: [...(set.TXT ?? []), value],
            TXTTTL: set.TXTTTL ?? ttl,
          };
          save(d);
        },
        read: async (owner: string) => db().rrsets[owner]?.TXT ?? [],
      },
      async readDirect(owner: string) {
        return (db().rrsets[owner]?.TLSA ?? []).map((t) => ({ owner, ...parseRdata(t) }));
      },
      async readTtls(owner: string) {
        const set = db().rrsets[owner];
        return new Map(
          (set?.TLSA ?? []).map((t) => [rdataText(parseRdata(t)), set!.TTL ?? 0] as const),
        );
      },
      async teardown() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
