/**
 * The doctor's certificate and TLSA part: published records read from a zone file, the chains
 * a service serves read from its configured files (the example lineages in docs/example), and
 * whether the records fit them; plus the human rendering of a report. Hashes are the openssl
 * CLI's (test/helpers/pki.ts).
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedCertificates } from '../../src/doctor/certificates.js';
import type { DoctorReport } from '../../src/doctor/doctor.js';
import type { MasterService, PostfixConfig } from '../../src/doctor/postconf.js';
import { renderReport } from '../../src/doctor/render.js';
import { effectiveView, type SmtpdService } from '../../src/doctor/services.js';
import {
  checkTlsa,
  fromFile,
  readTlsaFile,
  type PublishedRecords,
} from '../../src/doctor/tlsa-records.js';
import { InputError } from '../../src/errors.js';
import type { IssuerCatalog } from '../../src/issuers/catalog.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';

const EX = path.resolve('docs/example');
const EC = path.join(EX, 'letsencrypt/live/mx.example.org');
const RSA = path.join(EX, 'letsencrypt/live/mx.example.org-rsa');
const OWNER = '_25._tcp.mx.example.org.';

function service(
  name: string,
  main: Record<string, string>,
  overrides: Record<string, string> = {},
): SmtpdService {
  const m: MasterService = {
    name,
    type: 'inet',
    command: 'smtpd',
    commandLine: 'smtpd',
    overrides: new Map(Object.entries(overrides)),
  };
  const cfg: PostfixConfig = {
    configDir: '/etc/postfix',
    effectiveConfigDir: '/etc/postfix',
    version: '3.7.11',
    postconfPath: '/usr/sbin/postconf',
    explicit: new Map(Object.entries(main)),
    effective: new Map(Object.entries({ smtpd_tls_security_level: 'may', ...main })),
    services: [m],
  };
  return effectiveView(cfg, m);
}

const BOTH = {
  smtpd_tls_chain_files: `${RSA}/privkey.pem, ${RSA}/fullchain.pem ${EC}/privkey.pem ${EC}/fullchain.pem`,
};
const rec = (rdata: string, owner = OWNER): TlsaRecord => {
  const [u, s, m, d] = rdata.split(' ');
  return {
    owner,
    usage: Number(u) as TlsaRecord['usage'],
    selector: Number(s) as TlsaRecord['selector'],
    matching: Number(m) as TlsaRecord['matching'],
    data: d!,
  };
};

let dir: string;
const rd = { rsaEE: '', ecEE: '', rsaTA: '', ecTA: '' };
beforeAll(() => {
  dir = makeTempDir('tlsa-doctor-unit-');
  rd.rsaEE = `3 1 1 ${opensslSpkiSha256(`${RSA}/cert.pem`)}`;
  rd.ecEE = `3 1 1 ${opensslSpkiSha256(`${EC}/cert.pem`)}`;
  rd.rsaTA = `2 1 1 ${opensslSpkiSha256(`${RSA}/chain.pem`)}`;
  rd.ecTA = `2 1 1 ${opensslSpkiSha256(`${EC}/chain.pem`)}`;
});
afterAll(() => removeTempDir(dir));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('TLSA records from a zone file', () => {
  it('$ORIGIN, relative and @ owners, blank-owner continuation, multi-line parentheses, other types skipped', () => {
    const hex = 'ab'.repeat(32);
    const f = file(
      'zone',
      [
        '$ORIGIN example.org.',
        '$TTL 300',
        '@ IN SOA ns1 hostmaster ( 1 3600 600 86400 300 ) ; serial',
        `_25._tcp.mx 300 IN TLSA 3 1 1 ${hex}`,
        `            300 IN TLSA 2 1 1 ${'cd'.repeat(32)} ; the issuer`,
        'mx IN A 192.0.2.1',
        '_465._tcp.mx.example.org. IN TLSA ( 3 1 1',
        `    ${hex.slice(0, 32)}`,
        `    ${hex.slice(32)} )`,
        '',
      ].join('\n'),
    );
    const records = readTlsaFile(f);
    expect(
      records.map((r) => `${r.owner} ${r.usage} ${r.selector} ${r.matching} ${r.data.slice(0, 4)}`),
    ).toEqual([
      '_25._tcp.mx.example.org. 3 1 1 abab',
      '_25._tcp.mx.example.org. 2 1 1 cdcd',
      '_465._tcp.mx.example.org. 3 1 1 abab',
    ]);
    expect(records[2]!.data).toBe(hex);
    expect(fromFile(records, OWNER).records).toHaveLength(2);
  });

  it('a broken record is an InputError with file and line; a missing file too', () => {
    const f = file(
      'bad',
      ['$ORIGIN example.org.', '_25._tcp.mx IN TLSA 3 1 1 nothex', ''].join('\n'),
    );
    expect(() => readTlsaFile(f)).toThrow(InputError);
    try {
      readTlsaFile(f);
    } catch (e) {
      expect((e as InputError).located).toMatch(/bad:2: TLSA association data is not hex/);
    }
    expect(() => readTlsaFile(path.join(dir, 'nope'))).toThrow(/file not found/);
  });
});

describe('served certificates', () => {
  it('smtpd_tls_chain_files: each key followed by its chain, RSA and ECDSA side by side', () => {
    const c = servedCertificates(service('smtp', BOTH), '/etc/postfix');
    expect(c.problems).toEqual([]);
    expect(
      c.chains.map((x) => [
        x.parameter,
        x.keyType.label,
        x.leafName,
        x.certs.length,
        x.issuerServed,
        x.files.map((f) => path.basename(f)),
      ]),
    ).toEqual([
      ['smtpd_tls_chain_files', 'RSA 2048', 'mx.example.org', 2, true, ['fullchain.pem']],
      ['smtpd_tls_chain_files', 'ECDSA P-256', 'mx.example.org', 2, true, ['fullchain.pem']],
    ]);
  });

  it('one combined file (key + chain), a certificate before its key, a missing file', () => {
    const combined = file(
      'combined.pem',
      fs.readFileSync(`${EC}/privkey.pem`, 'utf8') + fs.readFileSync(`${EC}/fullchain.pem`, 'utf8'),
    );
    expect(
      servedCertificates(service('smtp', { smtpd_tls_chain_files: combined }), '/').chains.map(
        (x) => x.keyType.label,
      ),
    ).toEqual(['ECDSA P-256']);
    const wrong = servedCertificates(
      service('smtp', { smtpd_tls_chain_files: `${EC}/fullchain.pem ${EC}/privkey.pem` }),
      '/',
    );
    expect(wrong.problems.map((p) => p.message).join('\n')).toMatch(/comes before its private key/);
    const missing = servedCertificates(
      service('smtp', { smtpd_tls_chain_files: path.join(dir, 'gone.pem') }),
      '/',
    );
    expect(missing.problems.map((p) => p.message)).toEqual([
      `cannot read ${path.join(dir, 'gone.pem')}: file not found`,
    ]);
  });

  it('smtpd_tls_cert_file + smtpd_tls_eccert_file; cert.pem alone has no issuer; -o overrides main.cf', () => {
    const c = servedCertificates(
      service('smtp', {
        smtpd_tls_cert_file: `${RSA}/cert.pem`,
        smtpd_tls_eccert_file: `${EC}/fullchain.pem`,
      }),
      '/',
    );
    expect(c.parameter).toBe('smtpd_tls_cert_file');
    expect(c.chains.map((x) => [x.parameter, x.keyType.family, x.issuerServed])).toEqual([
      ['smtpd_tls_cert_file', 'rsa', false],
      ['smtpd_tls_eccert_file', 'ecdsa', true],
    ]);
    const o = servedCertificates(
      service('submission', BOTH, {
        smtpd_tls_chain_files: `${EC}/privkey.pem ${EC}/fullchain.pem`,
      }),
      '/',
    );
    expect(o.chains.map((x) => x.keyType.family)).toEqual(['ecdsa']);
    expect(servedCertificates(service('smtp', {}), '/')).toEqual({
      parameter: 'none',
      chains: [],
      problems: [],
    });
  });
});

describe('TLSA checks', () => {
  const now = new Date();
  const run = (
    records: string[],
    main: Record<string, string> = BOTH,
    extra: Partial<PublishedRecords> = {},
    catalog?: IssuerCatalog,
  ) => {
    const s = service('smtp', main);
    const certs = servedCertificates(s, '/');
    return checkTlsa({
      service: s,
      host: 'mx.example.org.',
      published: { owner: OWNER, source: 'file', records: records.map((r) => rec(r)), ...extra },
      chains: certs.chains,
      certParameter: certs.parameter,
      now,
      ...(catalog ? { catalog } : {}),
      otherOwners: ['_25._tcp.mail.example.org.'],
    });
  };
  const ids = (r: ReturnType<typeof run>): string[] => r.findings.map((f) => `${f.id}:${f.level}`);

  it('3 1 1 for RSA and 2 1 1 for the ECDSA issuer: both key types matched, no finding', () => {
    const r = run([rd.rsaEE, rd.ecTA]);
    expect(r.findings).toEqual([]);
    expect(
      r.verdicts.map((v) => [
        v.chain.keyType.family,
        v.verified,
        v.matched?.replace(/^.* at /, 'at '),
      ]),
    ).toEqual([
      ['rsa', true, 'at depth 0'],
      ['ecdsa', true, 'at depth 1'],
    ]);
  });

  it('one key type without a record; nothing matching; PKIX usages alone and beside usable records', () => {
    const missing = run([rd.rsaEE]);
    expect(ids(missing)).toEqual(['tlsa-key-type-missing:error']);
    expect(missing.findings[0]!.message).toMatch(
      /^RSA 2048 is covered, but no record .* matches the ECDSA P-256 chain/,
    );
    expect(ids(run([`3 1 1 ${'ef'.repeat(32)}`]))).toEqual(['tlsa-mismatch:error']);
    expect(ids(run([`1 1 1 ${rd.rsaEE.split(' ')[3]}`]))).toEqual(['tlsa-pkix-usage:error']);
    expect(ids(run([rd.rsaEE, rd.ecEE, `0 1 1 ${rd.rsaTA.split(' ')[3]}`]))).toEqual([
      'tlsa-pkix-usage:warning',
    ]);
  });

  it('2 1 1 with cert.pem served: an error when nothing else matches, a warning beside a matching 3 1 1; the catalog names the issuer', () => {
    const certOnly = { smtpd_tls_cert_file: `${RSA}/cert.pem` };
    const r = run([rd.rsaTA], certOnly);
    // One cause, one finding: the anchor is not served (no tlsa-mismatch besides).
    expect(ids(r)).toEqual(['tlsa-ta-not-served:error']);
    expect(r.findings[0]!).toMatchObject({ parameter: 'smtpd_tls_cert_file', global: true });
    expect(r.findings[0]!.message).toMatch(/holds only the leaf/);
    expect(r.findings[0]!.fix).toMatch(/fullchain\.pem/);
    expect(ids(run([rd.rsaEE, rd.rsaTA], certOnly))).toEqual(['tlsa-ta-not-served:warning']);
    const r1 = new X509Certificate(fs.readFileSync(`${RSA}/chain.pem`));
    const catalog: IssuerCatalog = {
      ca: 'example',
      asOf: '2026-01-01',
      file: '/x',
      intermediates: [
        {
          name: 'R1',
          key: 'rsa',
          status: 'active',
          notAfter: new Date(r1.validTo),
          cert: r1,
          file: '/x',
        },
      ],
    };
    expect(run([rd.rsaTA], certOnly, {}, catalog).findings[0]!.message).toMatch(
      /is the record of R1, the issuer of this leaf/,
    );
    // A record that matches nothing beside it is still reported as such.
    expect(ids(run([rd.rsaTA, `3 1 1 ${'ef'.repeat(32)}`], certOnly))).toEqual([
      'tlsa-ta-not-served:error',
    ]);
  });

  it('no records at the MX owner: a note that names the owners the file does have', () => {
    const r = run([]);
    expect(ids(r)).toEqual(['tlsa-none:info']);
    expect(r.findings[0]!.message).toMatch(/_25\._tcp\.mail\.example\.org\./);
  });

  it('DNS verdicts: bogus (error, nothing else checked), insecure (warning, records still checked), timeout (warning)', () => {
    expect(
      ids(run([rd.rsaEE, rd.ecTA], BOTH, { source: 'dns', status: 'bogus', message: 'bogus' })),
    ).toEqual(['tlsa-bogus:error']);
    expect(
      ids(run([rd.rsaEE], BOTH, { source: 'dns', status: 'insecure', message: 'insecure' })),
    ).toEqual(['tlsa-not-secure:warning', 'tlsa-key-type-missing:error']);
    expect(ids(run([], BOTH, { source: 'dns', status: 'timeout', message: 'timeout' }))).toEqual([
      'tlsa-lookup-failed:warning',
    ]);
  });
});

describe('human rendering', () => {
  it('per service: effective settings, then findings with why and fix; outbound; main.cf; what was not checked; totals', () => {
    const report: DoctorReport = {
      ok: false,
      exitCode: 1,
      postfix: { version: '3.7.11', configDir: '/etc/postfix' },
      services: [
        {
          service: 'smtp/25',
          master: 'smtp/inet',
          command: 'smtpd',
          port: 25,
          role: 'mx',
          tls: { securityLevel: 'may', wrappermode: false, mandatory: false },
          protocols: {
            parameter: 'smtpd_tls_protocols',
            value: '>=TLSv1',
            enabled: ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'],
            why: '',
          },
          certificates: {
            parameter: 'smtpd_tls_chain_files',
            chains: ['RSA 2048 mx.example.org ← R1 (/f.pem)'],
          },
          tlsa: {
            owner: OWNER,
            source: 'file',
            records: [rd.rsaEE],
            chains: [{ keyType: 'RSA 2048', verified: false }],
          },
        },
        {
          service: 'smtps/465',
          master: 'smtps/inet',
          command: 'smtpd',
          port: 465,
          role: 'smtps',
          tls: { securityLevel: 'may', wrappermode: true, mandatory: true },
          certificates: { parameter: 'smtpd_tls_chain_files', chains: [] },
        },
      ],
      outbound: {
        service: 'smtp/unix',
        securityLevel: 'dane',
        dnsSupportLevel: 'dnssec',
        relayhost: '',
        policyEntries: [],
      },
      findings: [
        {
          id: 'tlsa-mismatch',
          level: 'error',
          service: 'smtp/25',
          parameter: 'smtpd_tls_chain_files',
          message: 'No record matches.',
          fix: 'Publish.',
        },
        {
          id: 'protocols-legacy-syntax',
          level: 'info',
          service: 'main.cf',
          parameter: 'smtpd_tls_protocols',
          message: 'Legacy.',
          fix: 'smtpd_tls_protocols = >=TLSv1',
          edits: [
            { parameter: 'smtpd_tls_protocols', value: '>=TLSv1' },
            { service: 'smtps/inet', parameter: 'smtpd_tls_mandatory_protocols' },
            { service: 'smtps/inet', parameter: 'x', value: "it's" },
          ],
        },
      ],
      skipped: [{ check: 'validating resolver (dnssec_probe)', reason: 'test environment' }],
    };
    const text = renderReport(report);
    const at = (s: string): number => text.indexOf(s);
    expect(at('smtp/25  (smtp/inet: smtpd; public MX, opportunistic STARTTLS)')).toBeGreaterThan(0);
    expect(text).toMatch(
      / {2}ERROR tlsa-mismatch {2}\[smtpd_tls_chain_files\]\n {9}why: No record matches\.\n {9}fix: Publish\./,
    );
    expect(at('ERROR tlsa-mismatch')).toBeLessThan(at('smtps/465'));
    expect(text).toMatch(
      /smtps\/465 .*\n.*smtpd_tls_wrappermode = yes → mandatory\n {2}serves: {4}no certificate/,
    );
    expect(at('\nmain.cf\n  INFO  protocols-legacy-syntax')).toBeGreaterThan(
      at('smtp client  (outbound, smtp/unix)'),
    );
    expect(text).toMatch(
      /not checked:\n {2}validating resolver \(dnssec_probe\): test environment/,
    );
    // The edits of a fix as postconf commands, ready to paste.
    expect(text).toContain(
      [
        "         run: postconf -e 'smtpd_tls_protocols = >=TLSv1'",
        '         run: postconf -P -X smtps/inet/smtpd_tls_mandatory_protocols',
        "         run: postconf -P -e 'smtps/inet/x=it'\\''s'",
      ].join('\n'),
    );
    expect(text.trimEnd().split('\n').at(-1)).toBe('1 error(s), 0 warning(s), 1 note(s) — exit 1');
  });
});
