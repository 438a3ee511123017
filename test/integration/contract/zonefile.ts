/** Contract target: the zonefile provider on a real file; read back with an independent parser
 *  (ldns-read-zone from ldnsutils) so the provider's own parser is not its own judge. */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProvider } from '../../../providers/zonefile.js';
import type { TlsaRecord } from '../../../src/tlsa/record.js';
import type { ContractTarget } from './suite.js';

export const zonefileTarget: ContractTarget = {
  name: 'zonefile (real file, read back with ldns-read-zone)',
  tools: [['ldns-read-zone', 'ldnsutils']],
  noWriteFaults: 'one atomic rename of the file per change, no applyMany: no point between two writes to fail',
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-contract-zf-'));
    const path = join(dir, 'example.test.zone');
    writeFileSync(path, '$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n');
    const make = () => createProvider({ path }, { instance: 'contract', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) });
    return {
      zone: 'example.test.',
      provider: make,
      secrets: [],
      async addForeign(owner: string, r: TlsaRecord, ttl: number) {
        appendFileSync(path, `${owner} ${ttl} IN TLSA ${r.usage} ${r.selector} ${r.matching} ${r.data}\n`);
      },
      async addCname(owner: string, target: string) {
        appendFileSync(path, `${owner} 300 IN CNAME ${target}\n`);
      },
      async readDirect(owner: string) {
        const out = execFileSync('ldns-read-zone', ['-z', path], { encoding: 'utf8' });
        return out.split('\n').flatMap((line) => {
          const t = line.trim().split(/\s+/);
          if (t[3] !== 'TLSA' || t[0]!.toLowerCase() !== owner) return [];
          return [{ owner, usage: Number(t[4]), selector: Number(t[5]), matching: Number(t[6]), data: t.slice(7).join('').toLowerCase() } as TlsaRecord];
        });
      },
      async readTtls(owner: string) {
        const out = execFileSync('ldns-read-zone', ['-z', path], { encoding: 'utf8' });
        return new Map(out.split('\n').flatMap((line) => {
          const t = line.trim().split(/\s+/);
          return t[3] === 'TLSA' && t[0]!.toLowerCase() === owner ? [[`${t[4]} ${t[5]} ${t[6]} ${t.slice(7).join('').toLowerCase()}`, Number(t[1])] as const] : [];
        }));
      },
      async teardown() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
