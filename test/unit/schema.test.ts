/** docs/config.schema.json is generated from the zod schema (npm run schema) and must not go
 *  stale; config.example.yaml, which documents every key, must load. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { schemaText } from '../../src/config/write-schema.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCHEMA_FILE = path.join(ROOT, 'docs', 'config.schema.json');
const EXAMPLE = path.join(ROOT, 'config.example.yaml');

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

describe('config.example.yaml', () => {
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
