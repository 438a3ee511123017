/** docs/config.schema.json is generated from the zod schema (npm run schema) and must not go
 *  stale; config.example.yaml, which documents every key, must load. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import * as z from 'zod';
import { knownProviderTypes } from '../../providers/index.js';
import { loadConfig } from '../../src/config/load.js';
import { providerOptionsText, schemaText } from '../../src/config/write-schema.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCHEMA_FILE = path.join(ROOT, 'docs', 'config.schema.json');
const EXAMPLE = path.join(ROOT, 'config.example.yaml');
const OPTIONS_DOC = path.join(ROOT, 'docs', 'providers-options.md');

/** The JSON Schema as a validator, through zod's own JSON Schema reader. */
function validator(): z.ZodType {
  return z.fromJSONSchema(JSON.parse(schemaText()) as Parameters<typeof z.fromJSONSchema>[0]);
}

/** A minimal configuration with this block as its one provider. */
const withProvider = (block: Record<string, unknown>) => ({
  providers: { p: block },
  services: {},
});

/** The provider blocks config.example.yaml shows commented out ("  # knot:", "  #   type: …"). */
function commentedProviders(): Record<string, Record<string, unknown>> {
  const text = fs.readFileSync(EXAMPLE, 'utf8');
  const section = text.slice(text.indexOf('\nproviders:\n'), text.indexOf('\nservices:\n'));
  const lines = section
    .split('\n')
    .filter((l) => /^ {2}# ([a-z0-9_]+:\s*$| {2}[a-z0-9_]+: )/.test(l))
    .map((l) => l.replace(/^ {2}# /, ''));
  return parse(lines.join('\n')) as Record<string, Record<string, unknown>>;
}

describe('docs/config.schema.json', () => {
  it('exists and equals schemaText() (run "npm run schema" after changing src/config/schema.ts)', () => {
    expect(fs.existsSync(SCHEMA_FILE), `${SCHEMA_FILE} is missing: run npm run schema`).toBe(true);
    const onDisk = fs.readFileSync(SCHEMA_FILE, 'utf8');
    expect(onDisk, 'docs/config.schema.json is stale: run npm run schema').toBe(schemaText());
  });

  it('is a JSON Schema describing every top-level key of the configuration', () => {
    const schema = JSON.parse(schemaText()) as {
      title: string;
      type: string;
      properties: Record<string, unknown>;
      additionalProperties?: unknown;
    };
    expect(schema.title).toBe('tlsa configuration');
    expect(schema.type).toBe('object');
    expect(Object.keys(schema.properties).sort()).toEqual([
      'daemon',
      'max_records_per_name',
      'monitor',
      'providers',
      'services',
      'state_dir',
      'ttl',
      'verify',
    ]);
    expect(schema.additionalProperties).toBe(false);
  });
});

describe('provider blocks in the JSON Schema (from the option declarations)', () => {
  it('accept a block of each type with its declared options, a secret as <option>_file', () => {
    const v = validator();
    const ok = [
      { type: 'zonefile', path: 'example.zone', create: true, serial: 'dateserial' },
      { type: 'exec', command: ['/usr/local/bin/dns', '--zone', 'example.org'], timeout_s: 10 },
      { type: 'exec', command: 'my-dns-tool' },
      { type: 'rfc2136', server: '192.0.2.53', port: 53, tsig_secret_file: '/etc/tlsa/k' },
      { type: 'route53' },
      { type: 'cloudflare', api_token: '${CF_TOKEN}', batch_size: 3500 },
      { type: 'powerdns', api_key_file: '/etc/tlsa/pdns', url: 'http://127.0.0.1:8081' },
      { type: 'desec', token: '${DESEC_TOKEN}', max_wait_s: 0 },
    ];
    for (const block of ok)
      expect(v.safeParse(withProvider(block)).success, JSON.stringify(block)).toBe(true);
  });

  it('refuse an unknown key, a missing required option, a wrong type and an unknown type', () => {
    const v = validator();
    const bad = [
      { type: 'zonefile', path: 'example.zone', relaod: 'knotc zone-reload example.org' },
      { type: 'zonefile' },
      { type: 'zonefile', path: 'example.zone', create: 'yes' },
      { type: 'zonefile', path: 'example.zone', serial: 'sometimes' },
      { type: 'exec', command: [] },
      { type: 'rfc2136', port: 53 },
      { type: 'rfc2136', tsig_secret: 'x', port: 0 },
      { type: 'cloudflare' },
      { type: 'cloudflare', api_token: 'x', api_token_file: '/etc/tlsa/cf' },
      { type: 'cloudflare', api_token: 'x', batch_size: 2.5 },
      { type: 'route53', path_file: '/x' },
      { type: 'desec', token: 'x', zone: 'example.org' },
      { type: 'nsupdate', server: '192.0.2.53' },
      { path: 'example.zone' },
    ];
    for (const block of bad)
      expect(v.safeParse(withProvider(block)).success, JSON.stringify(block)).toBe(false);
  });
});

describe('docs/providers-options.md', () => {
  it('equals the reference generated from the declarations (run "npm run schema")', () => {
    expect(fs.existsSync(OPTIONS_DOC), `${OPTIONS_DOC} is missing: run npm run schema`).toBe(true);
    expect(fs.readFileSync(OPTIONS_DOC, 'utf8'), 'stale: run npm run schema').toBe(
      providerOptionsText(),
    );
    for (const type of knownProviderTypes())
      expect(providerOptionsText()).toContain(`## ${type}\n`);
  });
});

describe('config.example.yaml', () => {
  it('shows a block of every provider type, each valid against the schema', () => {
    const v = validator();
    const blocks = {
      ...(loadConfig(EXAMPLE).raw.providers as Record<string, Record<string, unknown>>),
      ...commentedProviders(),
    };
    expect(
      Object.values(blocks)
        .map((b) => b.type)
        .sort(),
    ).toEqual(knownProviderTypes());
    for (const [name, block] of Object.entries(blocks))
      expect(v.safeParse(withProvider(block)).error?.issues, name).toBeUndefined();
  });

  it('loads with loadConfig, without warnings', () => {
    const c = loadConfig(EXAMPLE);
    expect(c.warnings).toEqual([]);
    expect(c.stateDir).toBe(path.join(ROOT, '.tlsa-state'));
    expect(c.raw.providers.local).toMatchObject({ type: 'zonefile', path: 'example.zone' });
    expect(c.raw.services.mx).toMatchObject({
      host: 'mx.example.org',
      ports: [25],
      protocol: 'smtp',
      provider: 'local',
      ttl: 3600,
    });
    expect(c.raw.services.mx!.certificates).toHaveLength(2);
  });

  it('sets every top-level and service key the schema knows (it documents every key)', () => {
    const schema = JSON.parse(schemaText()) as {
      properties: Record<string, unknown> & {
        services: { additionalProperties: { properties: Record<string, unknown> } };
      };
    };
    loadConfig(EXAMPLE);
    const text = fs.readFileSync(EXAMPLE, 'utf8');
    for (const key of Object.keys(schema.properties))
      expect(text).toMatch(new RegExp(`^${key}:`, 'm'));
    const serviceKeys = Object.keys(schema.properties.services.additionalProperties.properties);
    expect(serviceKeys).toContain('certificates');
    // Every service key is documented: set, or shown commented out where setting it would change the demo.
    for (const key of serviceKeys) expect(text).toMatch(new RegExp(`^\\s*#?\\s*${key}:`, 'm'));
  });
});
