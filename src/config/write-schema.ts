/** Writes docs/config.schema.json (npm run schema); a test keeps it in step with the code. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';
import { configJsonSchema } from './schema.js';

export function schemaText(): string {
  const schema = { title: 'tlsa configuration', ...(configJsonSchema() as object) };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const out = join(packageRoot(), 'docs', 'config.schema.json');
  writeFileSync(out, schemaText());
  console.log(`wrote ${out}`);
}
