/**
 * The Postfix doctor's pure parts: reading postconf's output formats, the effective view per
 * service, and the checks on protocols, ciphers, listeners and outbound settings, on
 * configurations built in memory the way postconf reports them. The same checks run against
 * the real postconf in test/integration/doctor.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  buildCipherString,
  certificateSuites,
  checkCiphers,
  parseOpensslCiphers,
  type CipherView,
} from '../../src/doctor/ciphers.js';
import { exitCodeFor, sortFindings, type Finding } from '../../src/doctor/findings.js';
import { checkListener, checkMisplacedParameters } from '../../src/doctor/listeners.js';
import { checkOutbound, isLoopback, parsePolicyValue } from '../../src/doctor/outbound.js';
import {
  compareVersions,
  parseMasterServices,
  parseParameterLines,
  parseServiceParameters,
  splitList,
  splitTableList,
  type MasterService,
  type PostfixConfig,
} from '../../src/doctor/postconf.js';
import {
  boundsForm,
  checkProtocols,
  exclusionForm,
  parseProtocols,
} from '../../src/doctor/protocols.js';
import {
  effectiveView,
  portOf,
  roleOf,
  serviceLabel,
  smtpdServices,
  type SmtpdService,
} from '../../src/doctor/services.js';
import type { ServedCertificates } from '../../src/doctor/certificates.js';

// ---------------------------------------------------------------------------------------------
// A configuration as postconf would report it

function config(
  main: Record<string, string> = {},
  services: MasterService[] = [],
  version = '3.7.11',
): PostfixConfig {
  const defaults = {
    mail_version: version,
    myhostname: 'mx.example.org',
    smtpd_tls_protocols: '>=TLSv1',
    smtpd_tls_mandatory_protocols: '>=TLSv1',
    smtp_tls_secure_cert_match: 'nexthop, dot-nexthop',
    smtp_tls_protocols: '!SSLv2, !SSLv3',
  };
  return {
    configDir: '/etc/postfix',
    effectiveConfigDir: '/etc/postfix',
    version,
    explicit: new Map(Object.entries(main)),
    effective: new Map(Object.entries({ ...defaults, ...main })),
    services,
    postconfPath: '/usr/sbin/postconf',
  };
}

function master(
  name: string,
  overrides: Record<string, string> = {},
  command = 'smtpd',
  type = 'inet',
): MasterService {
  return {
    name,
    type,
    command,
    commandLine: command,
    overrides: new Map(Object.entries(overrides)),
  };
}

function service(
  name: string,
  main: Record<string, string> = {},
  overrides: Record<string, string> = {},
  version = '3.7.11',
): SmtpdService {
  const m = master(name, overrides);
  return effectiveView(config(main, [m], version), m);
}

const MAY = { smtpd_tls_security_level: 'may' };
const CERTS: ServedCertificates = { parameter: 'smtpd_tls_chain_files', chains: [], problems: [] };

// ---------------------------------------------------------------------------------------------

describe('postconf output', () => {
  it('parameter lines: name = value, empty values, continuation lines', () => {
    const m = parseParameterLines(
      'a = 1\nempty =\nlong = x,\n    y\nsmtpd_tls_protocols = >=TLSv1.2, <=TLSv1.3\n',
    );
    expect([...m]).toEqual([
      ['a', '1'],
      ['empty', ''],
      ['long', 'x, y'],
      ['smtpd_tls_protocols', '>=TLSv1.2, <=TLSv1.3'],
    ]);
  });

  it('postconf -P: per service/type, names with a host and port', () => {
    const m = parseServiceParameters(
      'smtps/inet/smtpd_tls_wrappermode = yes\n127.0.0.1:2525/inet/smtpd_tls_security_level = encrypt\nsmtps/inet/smtpd_tls_exclude_ciphers = aNULL, RC4\n',
    );
    expect([...m.get('smtps/inet')!]).toEqual([
      ['smtpd_tls_wrappermode', 'yes'],
      ['smtpd_tls_exclude_ciphers', 'aNULL, RC4'],
    ]);
    expect(m.get('127.0.0.1:2525/inet')!.get('smtpd_tls_security_level')).toBe('encrypt');
  });

  it('postconf -M: fields, the program without its directory, -o overrides attached, folded lines joined', () => {
    const overrides = parseServiceParameters(
      'submission/inet/smtpd_tls_security_level = encrypt\n',
    );
    const services = parseMasterServices(
      [
        'smtp       inet  n       -       y       -       1       postscreen',
        'smtpd      pass  -       -       y       -       -       smtpd',
        'submission inet  n       -       y       -       -       smtpd -o smtpd_tls_security_level=encrypt',
        'relay      unix  -       -       y       -       -       /usr/lib/postfix/sbin/smtp',
        '    -o syslog_name=postfix/relay',
        '',
      ].join('\n'),
      overrides,
    );
    expect(services.map((s) => [s.name, s.type, s.command])).toEqual([
      ['smtp', 'inet', 'postscreen'],
      ['smtpd', 'pass', 'smtpd'],
      ['submission', 'inet', 'smtpd'],
      ['relay', 'unix', 'smtp'],
    ]);
    expect(services[2]!.overrides.get('smtpd_tls_security_level')).toBe('encrypt');
    expect(services[3]!.commandLine).toBe(
      '/usr/lib/postfix/sbin/smtp -o syslog_name=postfix/relay',
    );
  });

  it('table lists split outside braces; lists; versions', () => {
    expect(
      splitTableList(
        'hash:/etc/postfix/tls_policy, inline:{ a=secure, {b = secure match=.x} } texthash:/t',
      ),
    ).toEqual([
      'hash:/etc/postfix/tls_policy',
      'inline:{ a=secure, {b = secure match=.x} }',
      'texthash:/t',
    ]);
    expect(splitList('aNULL, MD5  RC4')).toEqual(['aNULL', 'MD5', 'RC4']);
    expect(splitList('nexthop:dot-nexthop', true)).toEqual(['nexthop', 'dot-nexthop']);
    expect(compareVersions('3.7.11', '3.6')).toBeGreaterThan(0);
    expect(compareVersions('3.5.18', '3.6')).toBeLessThan(0);
    expect(compareVersions('3.6', '3.6.0')).toBe(0);
  });
});

describe('services: port, role, effective values', () => {
  it('ports from names (well-known, numeric, host:port) and roles', () => {
    expect(
      [
        'smtp',
        'submission',
        'smtps',
        'submissions',
        '465',
        '127.0.0.1:2525',
        '[::1]:submission',
      ].map(portOf),
    ).toEqual([25, 587, 465, 465, 465, 2525, 587]);
    expect([25, 587, 465, 2525, undefined].map(roleOf)).toEqual([
      'mx',
      'submission',
      'smtps',
      'other',
      'other',
    ]);
    expect(serviceLabel('smtp', 25)).toBe('smtp/25');
    expect(serviceLabel('127.0.0.1:2525', 2525)).toBe('127.0.0.1:2525');
  });

  it('an -o override wins over main.cf; origin says where a value comes from; wrappermode makes TLS mandatory', () => {
    const s = service('smtps', MAY, { smtpd_tls_wrappermode: 'yes' });
    expect(s.get('smtpd_tls_wrappermode')).toBe('yes');
    expect([
      s.origin('smtpd_tls_wrappermode'),
      s.origin('smtpd_tls_security_level'),
      s.origin('smtpd_tls_protocols'),
    ]).toEqual(['service', 'main.cf', 'default']);
    expect({
      level: s.securityLevel,
      wrappermode: s.wrappermode,
      enforce: s.enforce,
      tls: s.tls,
      role: s.role,
      label: s.label,
    }).toEqual({
      level: 'may',
      wrappermode: true,
      enforce: true,
      tls: true,
      role: 'smtps',
      label: 'smtps/465',
    });
  });

  it('legacy smtpd_use_tls / smtpd_enforce_tls when smtpd_tls_security_level is empty', () => {
    expect(service('smtp', { smtpd_use_tls: 'yes' }).securityLevel).toBe('may');
    expect(service('smtp', { smtpd_enforce_tls: 'yes' }).securityLevel).toBe('encrypt');
    expect(service('smtp').securityLevel).toBe('none');
  });

  it('postscreen on port 25 hands off to the smtpd pass service, whose -o settings apply', () => {
    const cfg = config(MAY, [
      master('smtp', {}, 'postscreen'),
      master('smtpd', { smtpd_tls_security_level: 'encrypt' }, 'smtpd', 'pass'),
      master('smtp', {}, 'smtp', 'unix'),
    ]);
    const [s, ...rest] = smtpdServices(cfg);
    expect(rest).toEqual([]);
    expect(s!.label).toBe('smtp/25');
    expect(s!.handoff?.name).toBe('smtpd');
    expect(s!.securityLevel).toBe('encrypt');
  });
});

describe('protocol lists (Postfix semantics)', () => {
  it.each([
    ['', ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'], ['include']],
    ['>=TLSv1.2', ['TLSv1.2', 'TLSv1.3'], ['bounds']],
    ['>=0x0303, <=TLSv1.2', ['TLSv1.2'], ['bounds']],
    ['!SSLv2, !SSLv3, !TLSv1, !TLSv1.1', ['TLSv1.2', 'TLSv1.3'], ['exclude']],
    ['!SSLv2:!SSLv3', ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'], ['exclude']],
    ['TLSv1.2', ['TLSv1.2'], ['include']],
    ['TLSv1.2 TLSv1.3 !SSLv3', ['TLSv1.2', 'TLSv1.3'], ['include', 'exclude']],
    ['tlsv1.3', ['TLSv1.3'], ['include']],
  ])('"%s" leaves %j on', (value, enabled, forms) => {
    const p = parseProtocols(value);
    expect(p.enabled).toEqual(enabled);
    expect(p.invalid).toEqual([]);
    if (value) expect(p.forms).toEqual(forms);
  });

  it('unknown names make the list invalid (Postfix disables TLS); unknown hex bounds are ignored', () => {
    expect(parseProtocols('!SSLv2, !TLS1.0').invalid).toEqual(['!TLS1.0']);
    expect(parseProtocols('!SSLv2, !TLS1.0').enabled).toEqual([]);
    expect(parseProtocols('>=TLSv1.2, <=0305')).toMatchObject({
      ignoredBounds: ['<=0305'],
      enabled: ['TLSv1.2', 'TLSv1.3'],
    });
    expect(parseProtocols('!0x0301').invalid).toEqual(['!0x0301']); // hex only in bounds
  });

  it('the >= form and the exclusion form of a set', () => {
    expect(boundsForm(['TLSv1.2', 'TLSv1.3'])).toBe('>=TLSv1.2');
    expect(boundsForm(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'])).toBe('>=TLSv1');
    expect(boundsForm(['TLSv1.1', 'TLSv1.2'])).toBe('>=TLSv1.1, <=TLSv1.2');
    expect(boundsForm(['TLSv1', 'TLSv1.2'])).toBeUndefined();
    expect(exclusionForm(['TLSv1.2', 'TLSv1.3'])).toBe('!SSLv2, !SSLv3, !TLSv1, !TLSv1.1');
  });
});

describe('protocol checks', () => {
  const ids = (s: SmtpdService, version = '3.7.11'): string[] =>
    checkProtocols(s, version).map((f) => `${f.id}:${f.level}:${f.parameter}`);

  it('-o smtpd_tls_protocols=!TLSv1 on a wrappermode service: the mandatory list applies, TLSv1 stays on', () => {
    const s = service('smtps', MAY, {
      smtpd_tls_wrappermode: 'yes',
      smtpd_tls_protocols: '!TLSv1',
    });
    const f = checkProtocols(s, '3.7.11').find((x) => x.id === 'protocols-wrong-parameter')!;
    expect(f).toMatchObject({ level: 'warning', parameter: 'smtpd_tls_protocols' });
    expect(f.message).toMatch(
      /wrappermode .* smtpd_tls_mandatory_protocols applies .* TLSv1 stays enabled/,
    );
    // Never a value derived from the mistaken line (that would be >=TLSv1.1 here): >=TLSv1.2.
    expect(f.fix).toBe(
      'In master.cf, on smtps/465: delete -o smtpd_tls_protocols and write -o smtpd_tls_mandatory_protocols=>=TLSv1.2.',
    );
    expect(f.edits).toEqual([
      { service: 'smtps/inet', parameter: 'smtpd_tls_protocols' },
      { service: 'smtps/inet', parameter: 'smtpd_tls_mandatory_protocols', value: '>=TLSv1.2' },
    ]);
  });

  it('main.cf smtpd_tls_protocols restricted, mandatory left at the default: flagged on encrypt services, not on port 25', () => {
    const main = { ...MAY, smtpd_tls_protocols: '>=TLSv1.2' };
    expect(ids(service('smtp', main))).toEqual([]);
    expect(ids(service('submission', main, { smtpd_tls_security_level: 'encrypt' }))).toEqual([
      'protocols-wrong-parameter:warning:smtpd_tls_protocols',
    ]);
  });

  it('strict mandatory + lax opportunistic in main.cf (the usual pattern) is fine on port 25; an -o mandatory list on port 25 is not', () => {
    const main = { ...MAY, smtpd_tls_mandatory_protocols: '>=TLSv1.2' };
    expect(ids(service('smtp', main))).toEqual([]);
    expect(ids(service('smtp', MAY, { smtpd_tls_mandatory_protocols: '>=TLSv1.2' }))).toEqual([
      'protocols-wrong-parameter:warning:smtpd_tls_mandatory_protocols',
    ]);
  });

  it('syntax: invalid (error where it applies), >= on Postfix < 3.6 (error), mixed forms, include lists without TLSv1.3 (too narrow), legacy form (info)', () => {
    expect(ids(service('smtp', { ...MAY, smtpd_tls_protocols: '!SSLv2, !TLS1' }))).toEqual([
      'protocols-invalid:error:smtpd_tls_protocols',
    ]);
    expect(ids(service('smtp', { ...MAY, smtpd_tls_protocols: '>=TLSv1' }), '3.5.18')).toEqual([
      'protocols-invalid:error:smtpd_tls_protocols',
    ]);
    expect(
      ids(
        service(
          'submission',
          { ...MAY, smtpd_tls_mandatory_protocols: 'TLSv1.2, TLSv1.3, !SSLv3' },
          { smtpd_tls_security_level: 'encrypt' },
        ),
      ),
    ).toEqual(['protocols-mixed-syntax:warning:smtpd_tls_mandatory_protocols']);
    expect(
      ids(
        service('submission', MAY, {
          smtpd_tls_security_level: 'encrypt',
          smtpd_tls_mandatory_protocols: 'TLSv1.2',
        }),
      ),
    ).toEqual(['protocols-too-narrow:warning:smtpd_tls_mandatory_protocols']);
    const legacy = checkProtocols(
      service(
        'submission',
        { ...MAY, smtpd_tls_mandatory_protocols: '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1' },
        { smtpd_tls_security_level: 'encrypt' },
      ),
      '3.7.11',
    );
    expect(legacy.map((f) => [f.id, f.level, f.fix, f.global])).toEqual([
      ['protocols-legacy-syntax', 'info', 'smtpd_tls_mandatory_protocols = >=TLSv1.2', true],
    ]);
    expect(
      ids(
        service(
          'submission',
          { ...MAY, smtpd_tls_mandatory_protocols: '!SSLv2, !SSLv3' },
          { smtpd_tls_security_level: 'encrypt' },
        ),
        '3.5.18',
      ),
    ).toEqual([]);
  });

  it("any listener without TLSv1.2 or TLSv1.3: a warning, an error when neither is left; port 25's fix is the default, elsewhere >=TLSv1.2", () => {
    expect(ids(service('smtp', { ...MAY, smtpd_tls_protocols: '>=TLSv1.3' }))).toEqual([
      'protocols-too-narrow:warning:smtpd_tls_protocols',
    ]);
    expect(
      ids(service('smtp', { smtpd_tls_security_level: 'none', smtpd_tls_protocols: '>=TLSv1.3' })),
    ).toEqual([]);
    expect(
      ids(
        service('smtps', MAY, {
          smtpd_tls_wrappermode: 'yes',
          smtpd_tls_mandatory_protocols: '<=TLSv1.2',
        }),
      ),
    ).toEqual(['protocols-too-narrow:warning:smtpd_tls_mandatory_protocols']);
    const tls10 = checkProtocols(
      service('submission', MAY, {
        smtpd_tls_security_level: 'encrypt',
        smtpd_tls_mandatory_protocols: 'TLSv1',
      }),
      '3.7.11',
    );
    expect(tls10.map((f) => [f.id, f.level])).toEqual([['protocols-too-narrow', 'error']]);
    expect(tls10[0]!.edits).toEqual([
      {
        service: 'submission/inet',
        parameter: 'smtpd_tls_mandatory_protocols',
        value: '>=TLSv1.2',
      },
    ]);
    const mx = checkProtocols(service('smtp', { ...MAY, smtpd_tls_protocols: 'TLSv1' }), '3.5.18');
    expect(mx.map((f) => [f.id, f.level, f.edits])).toEqual([
      ['protocols-too-narrow', 'error', [{ parameter: 'smtpd_tls_protocols' }]],
    ]);
    // Before 3.6 the proposed list is the exclusion form (Postfix 3.5 does not know >=).
    const old = checkProtocols(
      service(
        'submission',
        { ...MAY, smtpd_tls_mandatory_protocols: 'TLSv1' },
        { smtpd_tls_security_level: 'encrypt' },
      ),
      '3.5.18',
    );
    expect(old[0]!.edits).toEqual([
      { parameter: 'smtpd_tls_mandatory_protocols', value: '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1' },
    ]);
  });

  it('a proposed protocol list never leaves out TLS 1.2 or 1.3', () => {
    const lists = [
      'TLSv1',
      '<=TLSv1',
      'TLSv1, TLSv1.1',
      '!TLSv1.2, !TLSv1.3',
      '>=TLSv1.3',
      'TLSv1.2',
      'TLSv1.2, TLSv1.3, !SSLv3',
      '!SSLv2, !SSLv3',
      'SSLv3, TLSv1',
      '!TLS1',
    ];
    for (const list of lists) {
      for (const [name, o] of [
        ['smtp', {}],
        ['submission', { smtpd_tls_security_level: 'encrypt' }],
        ['smtps', { smtpd_tls_wrappermode: 'yes' }],
      ] as const) {
        for (const [where, main, overrides] of [
          [
            'main.cf',
            { ...MAY, smtpd_tls_protocols: list, smtpd_tls_mandatory_protocols: list },
            o,
          ],
          ['-o', MAY, { ...o, smtpd_tls_protocols: list, smtpd_tls_mandatory_protocols: list }],
        ] as const) {
          for (const f of checkProtocols(service(name, main, overrides), '3.7.11')) {
            for (const e of f.edits ?? []) {
              if (e.value === undefined || !/protocols$/.test(e.parameter)) continue;
              expect(
                parseProtocols(e.value).enabled,
                `${list} (${where} on ${name}): ${f.id} proposes ${e.parameter}=${e.value}`,
              ).toEqual(expect.arrayContaining(['TLSv1.2', 'TLSv1.3']));
            }
          }
        }
      }
    }
  });
});

describe('cipher lists and checks', () => {
  it('Postfix appends :!X per exclusion and refuses exclusions that start with ! + - @', () => {
    expect(buildCipherString('aNULL:-aNULL:HIGH:@STRENGTH', ['MD5', 'kEDH+aRSA'])).toEqual({
      cipherString: 'aNULL:-aNULL:HIGH:@STRENGTH:!MD5:!kEDH+aRSA',
    });
    expect(buildCipherString('HIGH', ['!RC4'])).toMatchObject({
      invalid: expect.stringMatching(/"!RC4"/),
    });
  });

  it('openssl ciphers -v output', () => {
    const text = [
      'TLS_AES_256_GCM_SHA384         TLSv1.3 Kx=any      Au=any   Enc=AESGCM(256)            Mac=AEAD',
      'ECDHE-ECDSA-AES256-GCM-SHA384  TLSv1.2 Kx=ECDH     Au=ECDSA Enc=AESGCM(256)            Mac=AEAD',
      'ECDHE-RSA-AES256-SHA           TLSv1   Kx=ECDH     Au=RSA   Enc=AES(256)               Mac=SHA1',
    ].join('\n');
    expect(parseOpensslCiphers(text).map((c) => [c.name, c.protocol, c.au])).toEqual([
      ['TLS_AES_256_GCM_SHA384', 'TLSv1.3', 'any'],
      ['ECDHE-ECDSA-AES256-GCM-SHA384', 'TLSv1.2', 'ECDSA'],
      ['ECDHE-RSA-AES256-SHA', 'TLSv1', 'RSA'],
    ]);
  });

  const suite = (name: string): CipherView['suites'][number] => ({
    name,
    protocol: 'TLSv1.2',
    kx: 'ECDH',
    au: name.includes('ECDSA') ? 'ECDSA' : 'RSA',
  });
  const view = (names: string[], o: Partial<CipherView> = {}): CipherView => ({
    gradeParameter: 'smtpd_tls_ciphers',
    grade: 'medium',
    exclusionParameters: ['smtpd_tls_exclude_ciphers'],
    exclusions: [],
    suites: names.map(suite),
    ...o,
  });
  const TLS12 = ['TLSv1.2', 'TLSv1.3'] as const;
  const mx = service('smtp', { ...MAY, smtpd_tls_exclude_ciphers: 'AESGCM' });

  it('no common suite left for any served key type: error on port 25, warning elsewhere; one key type left: a note, not an error', () => {
    const v = view(['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-CHACHA20-POLY1305'], {
      exclusions: ['AESGCM'],
      culprits: ['AESGCM'],
    });
    const rsaOnly = checkCiphers(mx, v, ['rsa'], TLS12);
    expect(rsaOnly.map((x) => [x.id, x.level, x.parameter])).toEqual([
      ['ciphers-no-shared-cipher', 'error', 'smtpd_tls_exclude_ciphers'],
    ]);
    expect(rsaOnly[0]!.message).toMatch(
      /exclusion AESGCM leaves none .*RSA certificate .*ECDHE-RSA-CHACHA20-POLY1305.*no shared cipher.*only TLS 1\.3 senders/,
    );
    expect(rsaOnly[0]!.edits).toEqual([
      { service: 'smtp/inet', parameter: 'smtpd_tls_exclude_ciphers', value: '' },
    ]);
    // RSA and ECDSA served: senders offer both families, and the ECDSA suites remain.
    const both = checkCiphers(mx, v, ['rsa', 'ecdsa'], TLS12);
    expect(both.map((x) => [x.id, x.level])).toEqual([['ciphers-key-type-unused', 'info']]);
    expect(both[0]!.message).toMatch(
      /no common sender suite for the RSA certificate, but the ECDSA certificate keeps ECDHE-ECDSA-AES128-GCM-SHA256/,
    );
    expect(checkCiphers(mx, v, ['ecdsa'], TLS12).map((x) => x.id)).toEqual([
      'ciphers-common-suites-excluded',
    ]); // AES128 left, AES256 not
    const sub = service(
      'submission',
      { ...MAY, smtpd_tls_exclude_ciphers: 'AESGCM' },
      { smtpd_tls_security_level: 'encrypt' },
    );
    const subF = checkCiphers(sub, v, ['rsa'], TLS12);
    expect(subF.map((x) => x.level)).toEqual(['warning']);
    expect(subF[0]!.edits).toEqual([{ parameter: 'smtpd_tls_exclude_ciphers', value: '' }]);
  });

  it('the cause is named: a custom tls_<grade>_cipherlist that lacks the suites before any exclusion', () => {
    const s = service('smtp', {
      ...MAY,
      smtpd_tls_ciphers: 'high',
      tls_high_cipherlist: 'HIGH:!AESGCM',
    });
    const v = view(['ECDHE-RSA-AES256-SHA384'], {
      grade: 'high',
      baseSuites: [suite('ECDHE-RSA-AES256-SHA384')],
    });
    const f = checkCiphers(s, v, ['rsa'], TLS12);
    expect(f.map((x) => [x.id, x.parameter])).toEqual([
      ['ciphers-no-shared-cipher', 'tls_high_cipherlist'],
    ]);
    expect(f[0]!.edits).toEqual([
      { service: 'smtp/inet', parameter: 'smtpd_tls_ciphers', value: 'medium' },
    ]);
  });

  it('suites a certificate can negotiate: no PSK, SRP or anonymous ones', () => {
    const all = [
      { name: 'ECDHE-RSA-AES128-GCM-SHA256', protocol: 'TLSv1.2', kx: 'ECDH', au: 'RSA' },
      { name: 'RSA-PSK-AES128-GCM-SHA256', protocol: 'TLSv1.2', kx: 'RSAPSK', au: 'RSA' },
      { name: 'SRP-RSA-AES-256-CBC-SHA', protocol: 'SSLv3', kx: 'SRP', au: 'RSA' },
      { name: 'PSK-AES128-GCM-SHA256', protocol: 'TLSv1.2', kx: 'PSK', au: 'PSK' },
      { name: 'ADH-AES256-GCM-SHA384', protocol: 'TLSv1.2', kx: 'DH', au: 'None' },
      { name: 'ECDHE-ECDSA-AES128-GCM-SHA256', protocol: 'TLSv1.2', kx: 'ECDH', au: 'ECDSA' },
    ];
    expect(certificateSuites(all).map((c) => c.name)).toEqual([
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES128-GCM-SHA256',
    ]);
  });

  it('some common suites removed: warning; harmless non-defaults on port 25: info; defaults: nothing; TLS 1.2 off: left to the protocol check', () => {
    expect(
      checkCiphers(
        mx,
        view(['ECDHE-RSA-AES256-GCM-SHA384'], { exclusions: ['AES128'] }),
        ['rsa'],
        TLS12,
      ).map((x) => x.id),
    ).toEqual(['ciphers-common-suites-excluded']);
    expect(
      checkCiphers(
        mx,
        view(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384'], {
          exclusions: ['RC4'],
        }),
        ['rsa'],
        TLS12,
      ).map((x) => [x.id, x.level]),
    ).toEqual([['ciphers-port25-not-default', 'info']]);
    expect(
      checkCiphers(
        service('smtp', MAY),
        view(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384']),
        ['rsa'],
        TLS12,
      ),
    ).toEqual([]);
    expect(checkCiphers(mx, view([]), ['rsa'], ['TLSv1.3'])).toEqual([]);
    expect(
      checkCiphers(mx, view([], { invalid: 'OpenSSL rejects it' }), ['rsa'], TLS12).map((x) => [
        x.id,
        x.level,
      ]),
    ).toEqual([['ciphers-invalid', 'error']]);
  });
});

describe('listener checks', () => {
  const ids = (s: SmtpdService, certs = CERTS, tlsa = false): string[] =>
    checkListener(s, certs, tlsa).map((f) => `${f.id}:${f.level}`);

  it('465 without wrappermode, 587/25 with it, encrypt on 25, no TLS on 25 (an error once TLSA is published)', () => {
    expect(ids(service('smtps', MAY))).toEqual(['smtps-no-wrappermode:error']);
    expect(ids(service('smtps', MAY, { smtpd_tls_wrappermode: 'yes' }))).toEqual([]);
    expect(ids(service('submission', MAY, { smtpd_tls_wrappermode: 'yes' }))).toEqual([
      'submission-wrappermode:error',
    ]);
    expect(ids(service('smtp', { smtpd_tls_security_level: 'encrypt' }))).toEqual([
      'port25-encrypt:error',
    ]);
    expect(ids(service('smtp', { smtpd_enforce_tls: 'yes' }))).toEqual(['port25-encrypt:error']);
    expect(ids(service('smtp', { smtpd_tls_security_level: 'none' }))).toEqual([
      'port25-no-tls:warning',
    ]);
    expect(ids(service('smtp', { smtpd_tls_security_level: 'none' }), CERTS, true)).toEqual([
      'port25-no-tls:error',
    ]);
    expect(ids(service('submission', MAY))).toEqual(['submission-not-encrypt:warning']);
    expect(ids(service('submission', { ...MAY, smtpd_tls_auth_only: 'yes' }))).toEqual([]);
  });

  it('a client level on smtpd, TLS without a certificate, unreadable certificate files', () => {
    const dane = checkListener(service('smtp', { smtpd_tls_security_level: 'dane' }), CERTS, false);
    expect(dane.map((f) => f.id)).toContain('server-level-invalid');
    expect(dane.find((f) => f.id === 'server-level-invalid')!.fix).toMatch(
      /smtp_tls_security_level = dane/,
    );
    expect(ids(service('smtp', MAY), { parameter: 'none', chains: [], problems: [] })).toEqual([
      'no-certificate:error',
    ]);
    expect(
      ids(service('smtp', MAY), {
        parameter: 'smtpd_tls_chain_files',
        chains: [],
        problems: [
          {
            parameter: 'smtpd_tls_chain_files',
            file: '/x',
            message: 'cannot read /x: permission denied',
          },
        ],
      }),
    ).toEqual(['cert-file-unreadable:error']);
  });

  it('-o smtp_* on smtpd and -o smtpd_* on smtp: the program ignores them', () => {
    const cfg = config({}, []);
    cfg.effective.set('smtpd_tls_mandatory_protocols', '>=TLSv1');
    const onServer = checkMisplacedParameters(
      cfg,
      master('submission', {
        smtp_tls_mandatory_protocols: '>=TLSv1.2',
        smtpd_sasl_auth_enable: 'yes',
      }),
      'submission/587',
      'server',
    );
    expect(onServer.map((f) => [f.id, f.parameter, f.edits])).toEqual([
      [
        'client-parameter-on-server',
        'smtp_tls_mandatory_protocols',
        [{ service: 'submission/inet', parameter: 'smtp_tls_mandatory_protocols' }],
      ],
    ]);
    // With the listener known: the list that applies there, >=TLSv1.2, never the line's value.
    for (const [overrides, applies] of [
      [{ smtpd_tls_security_level: 'encrypt' }, 'smtpd_tls_mandatory_protocols'],
      [{}, 'smtpd_tls_protocols'],
    ] as const) {
      const m = master('submission', { ...overrides, smtp_tls_mandatory_protocols: 'TLSv1' });
      const s = effectiveView(config(MAY, [m]), m);
      const [f] = checkMisplacedParameters(cfg, m, 'submission/587', 'server', s);
      expect(f!.fix).toMatch(
        new RegExp(
          `Delete -o smtp_tls_mandatory_protocols\\. To restrict protocols on submission/587, write -o ${applies}=>=TLSv1\\.2`,
        ),
      );
      expect(f!.edits).toEqual([
        { service: 'submission/inet', parameter: 'smtp_tls_mandatory_protocols' },
        { service: 'submission/inet', parameter: applies, value: '>=TLSv1.2' },
      ]);
    }
    // Port 25: delete only (the default stays).
    const m25 = master('smtp', { smtp_tls_protocols: 'TLSv1' });
    expect(
      checkMisplacedParameters(
        cfg,
        m25,
        'smtp/25',
        'server',
        effectiveView(config(MAY, [m25]), m25),
      )[0]!.edits,
    ).toEqual([{ service: 'smtp/inet', parameter: 'smtp_tls_protocols' }]);
    const onClient = checkMisplacedParameters(
      cfg,
      master('relay', { smtpd_tls_security_level: 'dane' }, 'smtp', 'unix'),
      'relay/unix',
      'client',
    );
    expect(onClient.map((f) => f.id)).toEqual(['server-parameter-on-client']);
  });
});

describe('outbound checks (no tables, no resolver: nothing leaves the process)', () => {
  const run = async (main: Record<string, string>, client?: MasterService): Promise<string[]> =>
    (
      await checkOutbound(config(main), client, { timeoutMs: 100, resolverSkipped: 'test' })
    ).findings.map((f) => `${f.id}:${f.level}`);

  it('DANE off (warning; info behind a relayhost), dane without DNSSEC (error), DANE on (nothing)', async () => {
    expect(await run({ smtp_tls_security_level: 'may' })).toEqual(['dane-outbound-off:warning']);
    expect(
      await run({ smtp_tls_security_level: 'may', relayhost: '[smarthost.example]:587' }),
    ).toEqual(['dane-outbound-off:info']);
    expect(await run({ smtp_tls_security_level: 'dane' })).toEqual(['dane-dnssec-off:error']);
    expect(
      await run({ smtp_tls_security_level: 'dane', smtp_dns_support_level: 'dnssec' }),
    ).toEqual([]);
    expect(
      await run(
        { smtp_tls_security_level: 'may' },
        master(
          'smtp',
          { smtp_tls_security_level: 'dane', smtp_dns_support_level: 'dnssec' },
          'smtp',
          'unix',
        ),
      ),
    ).toEqual([]);
  });

  it('the skipped resolver check is reported as skipped, not as a finding', async () => {
    const r = await checkOutbound(
      config({ smtp_tls_security_level: 'dane', smtp_dns_support_level: 'dnssec' }),
      undefined,
      { timeoutMs: 100, resolverSkipped: 'test environment' },
    );
    expect(r.skipped).toEqual([
      { check: 'validating resolver (dnssec_probe)', reason: 'test environment' },
    ]);
  });

  it('policy values and loopback addresses', () => {
    expect(
      parsePolicyValue(
        'hash:/p',
        'example.com',
        'secure match=.example.net:.example.com ciphers=high',
      ),
    ).toEqual({
      table: 'hash:/p',
      key: 'example.com',
      level: 'secure',
      attributes: { match: '.example.net:.example.com', ciphers: 'high' },
    });
    expect(['127.0.0.1', '127.0.53.9', '::1', '10.0.0.1', '192.0.2.53'].map(isLoopback)).toEqual([
      true,
      true,
      true,
      false,
      false,
    ]);
  });
});

describe('findings', () => {
  it('exit 1 only with an error; errors sort first', () => {
    const f = (level: Finding['level']): Finding => ({
      id: level,
      level,
      service: 's',
      parameter: 'p',
      message: 'm',
      fix: 'f',
    });
    expect(exitCodeFor([f('warning'), f('info')])).toBe(0);
    expect(exitCodeFor([f('info'), f('error')])).toBe(1);
    expect(sortFindings([f('info'), f('warning'), f('error')]).map((x) => x.level)).toEqual([
      'error',
      'warning',
      'info',
    ]);
  });
});
