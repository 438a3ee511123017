/** docs/json/*.schema.json are generated from src/cli/json-contract.ts (npm run schema) and must
 *  not go stale; each stands alone (no external $ref), and says what the contract says. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JSON_COMMANDS } from '../../src/cli/json-contract.js';
import { jsonSchemaFiles } from '../../src/cli/write-json-schemas.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'json');

describe('docs/json', () => {
  it('holds exactly the generated schemas, each equal to its text (run "npm run schema" after changing src/cli/json-contract.ts)', () => {
    const files = jsonSchemaFiles();
    expect(fs.readdirSync(DIR).sort()).toEqual(Object.keys(files).sort());
    for (const [name, text] of Object.entries(files))
      expect(fs.readFileSync(path.join(DIR, name), 'utf8'), `${name} is stale`).toBe(text);
  });

  it('has one schema per command that takes --json, plus the envelope', () => {
    expect(Object.keys(jsonSchemaFiles()).sort()).toEqual(
      ['envelope', ...JSON_COMMANDS].map((c) => `${c}.schema.json`).sort(),
    );
    expect(JSON_COMMANDS.sort()).toEqual(
      [
        'adopt',
        'check',
        'daemon',
        'doctor',
        'generate',
        'hook',
        'plan',
        'publish',
        'renew',
        'retire',
        'status',
      ].sort(),
    );
  });

  const plan = () =>
    z.fromJSONSchema(JSON.parse(fs.readFileSync(path.join(DIR, 'plan.schema.json'), 'utf8')));
  const failure = {
    ok: false,
    exitCode: 2,
    command: 'plan',
    warnings: [],
    error: { message: 'x', kind: 'input' },
  };

  it('is draft 2020-12 with local references only', () => {
    for (const [name, text] of Object.entries(jsonSchemaFiles())) {
      const s = JSON.parse(text) as { $schema: string };
      expect(s.$schema, name).toBe('https://json-schema.org/draft/2020-12/schema');
      for (const m of text.matchAll(/"\$ref": "([^"]*)"/g)) expect(m[1], name).toMatch(/^#\//);
    }
  });

  it("a command's schema takes its failure envelope and refuses another command's, an unknown kind, an unknown field", () => {
    expect(plan().safeParse(failure).success).toBe(true);
    expect(plan().safeParse({ ...failure, command: 'status' }).success).toBe(false);
    expect(plan().safeParse({ ...failure, error: { message: 'x', kind: 'oops' } }).success).toBe(
      false,
    );
    expect(plan().safeParse({ ...failure, extra: 1 }).success).toBe(false);
    expect(plan().safeParse({ ...failure, ok: true }).success).toBe(false);
    expect(plan().safeParse({ ok: true, exitCode: 0, command: 'plan', warnings: [] }).success).toBe(
      false,
    );
  });
});
