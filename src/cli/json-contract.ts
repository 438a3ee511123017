/** The `--json` contract of every command, in zod: one envelope (`ok`, `exitCode`, `command`,
 *  `warnings`), then the command's own fields, or `error` when the command stopped on one.
 *  docs/json/*.schema.json are generated from here (`npm run schema`); the commands type their
 *  output with CommandFields, and a test validates real outputs against these schemas. Never
 *  loaded by a running command (zod is a third of a cold start): fail.ts imports its types only. */
import { z } from 'zod';
import { PROTOCOLS_LIST } from '../tlsa/policy.js';
import { ERROR_KINDS } from './envelope.js';

const int = () => z.int().min(0);
const time = () => z.iso.datetime().describe('ISO 8601 time (UTC)');
const rdata = () =>
  z.string().describe('the record data as in a zone file: "usage selector matching hex"');
const strings = () => z.array(z.string());

const exitCode = z
  .int()
  .min(0)
  .max(4)
  .describe(
    'the exit code: 0 ok, 1 check failed or unsafe, 2 bad input, 3 provider or network, 4 wait',
  );

/** The head every output starts with, whatever the command. */
const head = {
  ok: z.boolean().describe('exitCode is 0'),
  exitCode,
  command: z.string().describe('the command that printed it'),
  warnings: strings().describe(
    'every warning the command printed on stderr for this output, without the "tlsa: warning: " prefix',
  ),
};

export const errorDetail = z
  .strictObject({
    message: z.string().describe('the message stderr shows (secrets redacted)'),
    kind: z
      .enum(ERROR_KINDS)
      .describe(
        'input: fix the command line or configuration; unsafe: nothing changed, a served chain would lose its record; provider, network: retry later, state consistent; wait: another run holds the lock or a step must wait; internal: a bug',
      ),
    hint: z.string().optional().describe('what to check'),
    file: z.string().optional().describe('the file the bad input is in'),
    line: z.int().min(1).optional(),
  })
  .meta({ id: 'error' });

const FAILURE = 'The command stopped on an error: stdout carries this, stderr the same message.';

export const failure = z
  .strictObject({
    ...head,
    ok: z.literal(false),
    exitCode: exitCode.min(1),
    error: errorDetail,
  })
  .meta({ id: 'failure', description: FAILURE });

// --- what the commands share ----------------------------------------------------------------

const servedTtl = z
  .strictObject({ ttl: int(), at: time() })
  .nullable()
  .describe('the TTL the authoritative servers served when last seen');
const waitTtl = z
  .strictObject({
    seconds: int(),
    ttl: int(),
    why: z.string().describe('where the TTL the wait counts from comes from'),
  })
  .nullable();

const planFields = {
  summary: z.strictObject({
    add: int(),
    remove: int(),
    retiring: int(),
    keep: int(),
    unowned: int(),
    foreign: int(),
  }),
  owners: z.array(
    z.strictObject({
      owner: z.string(),
      ownerUnicode: z.string().optional(),
      provider: z.string(),
      ttl: int(),
      ttlWhy: z
        .string()
        .optional()
        .describe('why ttl is not the configured TTL: the provider publishes the RRset with it'),
      servedTtl: servedTtl.optional(),
      wait: waitTtl,
      add: z.array(
        z.strictObject({
          rdata: rdata(),
          why: z.string(),
          service: z.string(),
          ttl: int().optional().describe('with ttlFrom: the new TTL the record is re-added with'),
          ttlFrom: int().optional().describe('the TTL the record was published with before'),
        }),
      ),
      remove: z.array(
        z.strictObject({
          rdata: rdata(),
          service: z.string(),
          held: z.strictObject({ why: z.string(), at: time() }).optional(),
        }),
      ),
      retiring: z.array(z.strictObject({ rdata: rdata(), since: time(), due: time() })),
      keep: z.array(z.strictObject({ rdata: rdata(), why: z.string(), owned: z.boolean() })),
      foreign: z.array(z.strictObject({ rdata: rdata() })),
    }),
  ),
};

const engineFields = {
  added: int(),
  removed: int(),
  promoted: z.array(
    z.strictObject({
      service: z.string(),
      source: z.string(),
      chain: z.string(),
      release: z.string().optional(),
      reloaded: z.boolean().optional(),
      reloadError: z.string().optional(),
    }),
  ),
  waiting: z.array(
    z.strictObject({
      service: z.string(),
      chain: z.string(),
      reason: z.string(),
      eta: time().nullable(),
    }),
  ),
  held: z.array(z.strictObject({ owner: z.string(), rdata: rdata(), why: z.string() })),
  retired: z.array(z.strictObject({ owner: z.string(), rdata: rdata() })),
  served: z.array(
    z.strictObject({
      service: z.string(),
      chain: z.string(),
      live: z.boolean(),
      eta: time().nullable(),
      reloaded: z.boolean().optional().describe('the hook reloaded the service for this chain'),
      reloadError: z.string().optional(),
    }),
  ),
  network: z.array(z.strictObject({ message: z.string(), hint: z.string().nullable() })),
};

const nextRenewal = z
  .strictObject({
    at: time().describe('renew at (or after) this time'),
    source: z
      .enum(['ari', 'lifetime', 'rate-limit', 'retry', 'no-certificate'])
      .describe(
        "ari: inside the CA's ARI window; lifetime: two thirds of the lifetime (one half at 10 days or less); rate-limit: the CA said not before `at`; retry: the last attempt failed; no-certificate: none issued yet",
      ),
    windowStart: time().optional().describe('the ARI window (source ari)'),
    windowEnd: time().optional(),
    nextPollAt: time().optional().describe("when the CA's renewalInfo is asked again"),
    lastError: z.string().optional().describe('why the last attempt failed (rate-limit, retry)'),
    staleSchedule: z
      .boolean()
      .optional()
      .describe('the schedule file is for an earlier certificate: the lifetime rule decided'),
  })
  .describe('the next renewal of the lineage and where its time comes from');

const adoptedRow = z.strictObject({
  owner: z.string(),
  rdata: rdata(),
  service: z.string().optional(),
});

const checkReport = z.strictObject({
  host: z.string(),
  port: z.int().min(1).max(65535),
  protocol: z.enum(PROTOCOLS_LIST),
  owner: z.string(),
  dnssec: z.strictObject({ tlsa: z.string(), address: z.string(), message: z.string() }),
  records: strings(),
  authoritative: z.strictObject({
    inSync: z.boolean(),
    summary: z.string(),
    lagging: strings(),
  }),
  servedTtl: int().optional(),
  probes: z.array(
    z.strictObject({
      address: z.string(),
      keyType: z.enum(['rsa', 'ecdsa']),
      ok: z.boolean(),
      notServed: z.boolean().optional(),
      matched: z.string().optional(),
      leaf: z.string().optional(),
      problems: strings(),
    }),
  ),
  nextRenewal: z.array(
    z.strictObject({
      keyType: z.string(),
      verdict: z.enum(['safe', 'staged', 'breaks']),
      uncovered: strings(),
      text: z.string(),
      fixes: strings(),
    }),
  ),
  failures: strings(),
  warnings: strings(),
  ok: z.boolean(),
});

// --- each command's own fields --------------------------------------------------------------

export const FIELDS = {
  generate: z.strictObject({
    host: z.strictObject({ ascii: z.string(), unicode: z.string() }),
    records: z.array(
      z.strictObject({
        owner: z.string(),
        ttl: int(),
        usage: int(),
        selector: int(),
        matching: int(),
        data: z.string(),
        rdata: rdata(),
        why: z.string(),
        matchesServed: z.boolean(),
      }),
    ),
    chains: z.array(
      z.strictObject({
        source: z.string(),
        keyType: z.string(),
        leaf: z.string(),
        issuer: z.string().nullable(),
        notAfter: time(),
      }),
    ),
  }),
  plan: z.strictObject({
    ...planFields,
    notes: strings(),
    validityProblems: strings().describe('certificates publish refuses without --force'),
  }),
  publish: z.strictObject({ ...planFields, ...engineFields }),
  status: z.strictObject({
    records: z.array(
      z.strictObject({
        owner: z.string(),
        ownerUnicode: z.string().optional(),
        rdata: rdata(),
        service: z.string(),
        provider: z.string(),
        ttl: int(),
        servedTtl,
        phase: z.enum(['publishing', 'pending', 'live', 'retiring', 'removing']),
        ageSeconds: z.int(),
        nextInSeconds: z.int().nullable(),
        waitsFor: z.string().nullable(),
        wait: waitTtl,
        publishedAt: time().nullable(),
        retiringSince: time().nullable(),
        by: z.string(),
      }),
    ),
    acme: z
      .array(
        z.strictObject({
          service: z.string(),
          keyType: z.string(),
          lineage: z.string(),
          notAfter: time().nullable().describe("the current certificate's expiry (null: none)"),
          serial: z.string().nullable(),
          next: nextRenewal,
          nextKey: z
            .strictObject({
              spkiSha256: z.string().describe('the data of its 3 1 1'),
              live: z.boolean().describe('a renewal now would use it and serve at once'),
            })
            .nullable()
            .describe('null before the first renew made one'),
        }),
      )
      .describe('the built-in ACME lineages (services with acme:)'),
  }),
  retire: z.strictObject({ dryRun: z.boolean(), ...engineFields }),
  adopt: z.strictObject({
    dryRun: z.boolean(),
    adopted: z.array(adoptedRow),
    retiring: z.array(adoptedRow),
    foreign: z.array(adoptedRow),
    missing: int().describe('desired records not published yet'),
  }),
  check: z.strictObject({ reports: z.array(checkReport) }),
  hook: z.strictObject({
    services: strings().describe('the services the renewed certificate belongs to'),
    ...engineFields,
    problems: strings(),
  }),
  renew: z.strictObject({
    lineages: z.array(
      z.strictObject({
        service: z.string(),
        keyType: z.string(),
        lineage: z.string(),
        outcome: z.enum(['renewed', 'not-due']),
        key: z
          .strictObject({
            use: z.enum(['next', 'fresh']),
            reason: z
              .enum(['no next key', 'next key record not live'])
              .nullable()
              .describe('why a fresh key (not-live: the new chain waits, exit 4)'),
          })
          .nullable()
          .describe('the key the renewal used (null: not renewed)'),
        notAfter: time().nullable().describe("the lineage's certificate's expiry"),
        next: nextRenewal,
      }),
    ),
    ...engineFields,
  }),
  daemon: z.strictObject({
    ...engineFields,
    next: z
      .strictObject({ at: time(), why: z.string() })
      .nullable()
      .describe(
        'when the daemon runs next, and why (with --once: when the next due step is, if any)',
      ),
  }),
  doctor: z.strictObject({
    postfix: z.strictObject({ version: z.string(), configDir: z.string() }),
    services: z.array(
      z.strictObject({
        service: z.string(),
        master: z.string(),
        command: z.string(),
        port: z.int().optional(),
        role: z.enum(['mx', 'submission', 'smtps', 'other']),
        tls: z.strictObject({
          securityLevel: z.string(),
          wrappermode: z.boolean(),
          mandatory: z.boolean(),
        }),
        protocols: z
          .strictObject({
            parameter: z.string(),
            value: z.string(),
            enabled: strings(),
            why: z.string(),
          })
          .optional(),
        ciphers: z
          .strictObject({
            parameter: z.string(),
            grade: z.string(),
            exclusions: strings(),
            cipherString: z.string().optional(),
            tls12Suites: int(),
            commonSuites: strings(),
            invalid: z.string().optional(),
          })
          .optional(),
        certificates: z.strictObject({ parameter: z.string(), chains: strings() }),
        tlsa: z
          .strictObject({
            owner: z.string(),
            source: z.enum(['file', 'dns']),
            status: z.string().optional(),
            cnameChain: strings().optional(),
            records: strings(),
            chains: z.array(
              z.strictObject({
                keyType: z.string(),
                verified: z.boolean(),
                matched: z.string().optional(),
              }),
            ),
          })
          .optional(),
      }),
    ),
    outbound: z.strictObject({
      service: z.string(),
      securityLevel: z.string(),
      dnsSupportLevel: z.string(),
      relayhost: z.string(),
      policyEntries: z.array(
        z.strictObject({
          table: z.string(),
          key: z.string(),
          level: z.string(),
          attributes: z.record(z.string(), z.string()),
        }),
      ),
      resolver: z
        .strictObject({ server: z.string(), status: z.string(), message: z.string() })
        .optional(),
    }),
    findings: z.array(
      z.strictObject({
        id: z.string().describe('stable identifier, listed in docs/doctor.md'),
        level: z.enum(['error', 'warning', 'info']),
        service: z.string(),
        parameter: z.string(),
        message: z.string(),
        fix: z.string(),
        edits: z
          .array(
            z.strictObject({
              service: z.string().optional(),
              parameter: z.string(),
              value: z.string().optional(),
            }),
          )
          .optional(),
      }),
    ),
    skipped: z.array(z.strictObject({ check: z.string(), reason: z.string() })),
  }),
} as const;

export type JsonCommand = keyof typeof FIELDS;
export const JSON_COMMANDS = Object.keys(FIELDS) as JsonCommand[];

/** What each command puts after the envelope's head. */
export type CommandFields = { [C in JsonCommand]: z.input<(typeof FIELDS)[C]> };

/** A command's successful output: the head, then its fields. */
export function resultSchema<C extends JsonCommand>(command: C) {
  return z.strictObject({ ...head, command: z.literal(command), ...FIELDS[command].shape });
}

/** Everything `tlsa COMMAND --json` may print (the daemon: each line). */
export function outputSchema(command: JsonCommand) {
  return z.union([
    resultSchema(command),
    failure.extend({ command: z.literal(command) }).meta({ description: FAILURE }),
  ]);
}

/** The envelope alone: any command's output starts so. */
export const envelope = z.union([z.looseObject(head), failure]);
