/** Contract target: the zonefile provider on a real file; read back with an independent parser
 *  (ldns-read-zone from ldnsutils) so the provider's own parser is not its own judge. The zone
 *  has its SOA across parentheses with comments and the provider bumps the serial
 *  (`serial: increment`): every read-back also checks that each change of the file by the
 *  provider raised the serial, and that ldns still reads the file. */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProvider } from '../../../providers/zonefile.js';
import type { TlsaRecord } from '../../../src/tlsa/record.js';
import type { ContractTarget } from './suite.js';
import { quoteForSeed, readTxtText } from './txt-suite.js';

export const zonefileTarget: ContractTarget = {
  name: 'zonefile (real file, read back with ldns-read-zone)',
  tools: [['ldns-read-zone', 'ldnsutils']],
  noWriteFaults:
    'one atomic rename of the file per change, no applyMany: no point between two writes to fail',
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-contract-zf-'));
    const path = join(dir, 'example.test.zone');
    writeFileSync(
      path,
      '$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster ( ; (a comment)\n\t1 ; serial\n\t3600 600 86400 300 )\n@ IN NS ns1\nns1 IN A 127.0.0.1\n',
    );
    const make = () =>
      createProvider(
        { path, serial: 'increment' },
        { instance: 'contract', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
      );
    const ldns = () => execFileSync('ldns-read-zone', ['-z', path], { encoding: 'utf8' });
    const soaSerial = (out: string) =>
      Number(
        out
          .split('\n')
          .map((l) => l.trim().split(/\s+/))
          .find((t) => t[3] === 'SOA')![6],
      );
    // The file and serial as last seen: a later read finding other text needs a higher serial.
    let seen = { text: readFileSync(path, 'utf8'), serial: 1 };
    const rebase = () => {
      seen = { text: readFileSync(path, 'utf8'), serial: seen.serial };
    };
    /** ldns-read-zone's reading of the file, after checking the serial went up with each
     *  change the provider made. */
    const checkedLdns = () => {
      const out = ldns();
      const text = readFileSync(path, 'utf8');
      const serial = soaSerial(out);
      if (text !== seen.text && !(serial > seen.serial))
        throw new Error(
          `the provider changed the zone but the SOA serial did not go up (${seen.serial} → ${serial})`,
        );
      seen = { text, serial };
      return out;
    };
    return {
      zone: 'example.test.',
      provider: make,
      secrets: [],
      async addForeign(owner: string, r: TlsaRecord, ttl: number) {
        appendFileSync(
          path,
          `${owner} ${ttl} IN TLSA ${r.usage} ${r.selector} ${r.matching} ${r.data}\n`,
        );
        rebase();
      },
      async addCname(owner: string, target: string) {
        appendFileSync(path, `${owner} 300 IN CNAME ${target}\n`);
        rebase();
      },
      txt: {
        async addForeign(owner: string, value: string, ttl: number) {
          // Split in two strings across parentheses, with a comment between: as hand-made
          // zones have them.
          const half = Math.floor(value.length / 2);
          appendFileSync(
            path,
            `${owner} ${ttl} IN TXT ( ${quoteForSeed(value.slice(0, half))} ; foreign\n\t${quoteForSeed(value.slice(half))} )\n`,
          );
          rebase();
        },
        async read(owner: string) {
          return checkedLdns()
            .split('\n')
            .flatMap((line) => {
              const m = /^(\S+)\s+\d+\s+IN\s+TXT\s+(.*)$/.exec(line.trim());
              return m && m[1]!.toLowerCase() === owner ? [readTxtText(m[2]!)] : [];
            });
        },
      },
      async readDirect(owner: string) {
        return checkedLdns()
          .split('\n')
          .flatMap((line) => {
            const t = line.trim().split(/\s+/);
            if (t[3] !== 'TLSA' || t[0]!.toLowerCase() !== owner) return [];
            return [
              {
                owner,
                usage: Number(t[4]),
                selector: Number(t[5]),
                matching: Number(t[6]),
                data: t.slice(7).join('').toLowerCase(),
              } as TlsaRecord,
            ];
          });
      },
      async readTtls(owner: string) {
        const out = execFileSync('ldns-read-zone', ['-z', path], { encoding: 'utf8' });
        return new Map(
          out.split('\n').flatMap((line) => {
            const t = line.trim().split(/\s+/);
            return t[3] === 'TLSA' && t[0]!.toLowerCase() === owner
              ? [
                  [
                    `${t[4]} ${t[5]} ${t[6]} ${t.slice(7).join('').toLowerCase()}`,
                    Number(t[1]),
                  ] as const,
                ]
              : [];
          }),
        );
      },
      async teardown() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
