/** Writes docs/json/*.schema.json from src/cli/json-contract.ts (npm run schema); a test keeps
 *  them in step with the code. Each command's file stands alone (the envelope's error shape in
 *  its own $defs), so that any validator, and zod's fromJSONSchema, reads it without fetching. */
import { mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { packageRoot } from '../util/package-root.js';
import { envelope, JSON_COMMANDS, outputSchema } from './json-contract.js';

function text(title: string, description: string, schema: z.ZodType): string {
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return `${JSON.stringify({ $schema, title, description, ...rest }, null, 2)}\n`;
}

/** File name (in docs/json) → its text. */
export function jsonSchemaFiles(): Record<string, string> {
  const files: Record<string, string> = {
    'envelope.schema.json': text(
      'tlsa --json envelope',
      "What every command prints with --json: ok, exitCode, command, warnings, then the command's own fields (see COMMAND.schema.json), or error when it stopped on one.",
      envelope,
    ),
  };
  for (const c of JSON_COMMANDS)
    files[`${c}.schema.json`] = text(
      `tlsa ${c} --json`,
      c === 'daemon'
        ? 'Each line tlsa daemon --json prints: one object per run.'
        : `What tlsa ${c} --json prints on stdout.`,
      outputSchema(c),
    );
  return files;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const dir = join(packageRoot(), 'docs', 'json');
  mkdirSync(dir, { recursive: true });
  const files = jsonSchemaFiles();
  for (const f of readdirSync(dir)) if (!(f in files)) unlinkSync(join(dir, f));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  console.log(`wrote ${Object.keys(files).length} schemas to ${dir}`);
}
