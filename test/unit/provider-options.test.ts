/** Each provider declares its options once (providers/<type>-options.ts); readOptions checks a
 *  block against the declaration, and every adapter refuses what its declaration does not allow,
 *  at the option's key. */
import { describe, expect, it } from 'vitest';
import { loadProviderFactory, providerOptions } from '../../providers/index.js';
import { type ProviderOptions, readOptions } from '../../providers/options.js';
import { redact } from '../../src/util/redact.js';

const ctx = {
  instance: 't',
  baseDir: '/',
  optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
};

const DEMO = {
  provider: 'demo',
  options: {
    host: { type: 'string', required: 'demo needs "host"', doc: 'a host' },
    mode: { type: 'string', default: 'fast', oneOf: ['fast', 'slow'], doc: 'a mode' },
    secret: { type: 'string', secret: true, doc: 'a secret' },
    retries: { type: 'number', default: 3, integer: true, min: 0, max: 10, doc: 'retries' },
    wait_s: { type: 'number', default: 1, above: 0, doc: 'a wait' },
    dry: { type: 'boolean', default: false, doc: 'a switch' },
    run: { type: 'command', doc: 'a program' },
  },
} as const satisfies ProviderOptions;

describe('readOptions(declaration, options, ctx)', () => {
  it('fills in defaults, trims strings and leaves optional options out', () => {
    const o = readOptions(DEMO, { host: ' h.example ' }, ctx);
    expect(o).toEqual({ host: 'h.example', mode: 'fast', retries: 3, wait_s: 1, dry: false });
  });

  it('refuses an unknown key at its line, with the key it probably meant and the known ones', () => {
    expect(() => readOptions(DEMO, { host: 'h', retires: 2 }, ctx)).toThrow(
      /^retires: demo has no option "retires"; did you mean "retries"\? \(known: host, mode, secret, retries, wait_s, dry, run; secrets as <option>_file: PATH or \$\{ENV_VAR\}\)$/,
    );
  });

  it('reports a missing required option with its own message', () => {
    expect(() => readOptions(DEMO, {}, ctx)).toThrow(/^host: demo needs "host"$/);
  });

  it('checks each value against its declared type and bounds', () => {
    const bad = (o: Record<string, unknown>) => () => readOptions(DEMO, { host: 'h', ...o }, ctx);
    expect(bad({ host: '  ' })).toThrow(/^host: "host" must be a non-empty string$/);
    expect(bad({ mode: 'medium' })).toThrow(/^mode: "mode" must be one of fast, slow$/);
    expect(bad({ retries: 1.5 })).toThrow(
      /^retries: "retries" must be a whole number ≥ 0 and ≤ 10$/,
    );
    expect(bad({ retries: 11 })).toThrow(/^retries:/);
    expect(bad({ wait_s: 0 })).toThrow(/^wait_s: "wait_s" must be a number > 0$/);
    expect(bad({ dry: 'yes' })).toThrow(/^dry: "dry" must be true or false$/);
    expect(bad({ run: [] })).toThrow(/^run: "run" must be an argv list/);
    expect(bad({ run: ['a', ''] })).toThrow(/^run:/);
    expect(readOptions(DEMO, { host: 'h', run: ['a', 'b'] }, ctx).run).toEqual(['a', 'b']);
    expect(readOptions(DEMO, { host: 'h', run: 'a | b' }, ctx).run).toBe('a | b');
  });

  it('registers a declared secret, so that no message can print it', () => {
    readOptions(DEMO, { host: 'h', secret: 'hunter2-declared' }, ctx);
    expect(redact('token hunter2-declared')).not.toContain('hunter2-declared');
  });
});

/** The least options each type is created with (nothing is contacted at creation). */
const MINIMAL: Record<string, Record<string, unknown>> = {
  zonefile: { path: 'zone.db' },
  exec: { command: 'true' },
  rfc2136: { tsig_secret: 'c2VjcmV0LXNlY3JldA==', tsig_name: 'tlsa-update.' },
  route53: {},
  cloudflare: { api_token: 'token-of-the-test' },
  powerdns: { api_key: 'key-of-the-test' },
  desec: { token: 'token-of-the-test' },
};

const WRONG = { string: 42, number: 'many', boolean: 'yes', command: 7 } as const;

describe('every provider reads its options through its declaration', () => {
  it('each registered type has a declaration, and this test knows how to create it', () => {
    expect(providerOptions().map((d) => d.provider)).toEqual(Object.keys(MINIMAL));
  });

  for (const declaration of providerOptions()) {
    const type = declaration.provider;
    it(`${type}: created from its required options alone; an undeclared key and a value of the wrong type are refused at their key`, async () => {
      const create = (await loadProviderFactory(type))!;
      expect(create(MINIMAL[type]!, ctx).name).toContain(type);
      expect(() => create({ ...MINIMAL[type], colour: 'blue' }, ctx)).toThrow(
        new RegExp(`^colour: ${type} has no option "colour"`),
      );
      for (const [key, spec] of Object.entries(declaration.options)) {
        expect(() => create({ ...MINIMAL[type], [key]: WRONG[spec.type] }, ctx), key).toThrow(
          new RegExp(`^${key}: `),
        );
        if (spec.required) {
          const { [key]: _left, ...rest } = MINIMAL[type]!;
          expect(() => create(rest, ctx), key).toThrow(`${key}: ${spec.required}`);
        }
      }
    }, 60_000);
  }
});
