/** Writes docs/config.schema.json and docs/providers-options.md (npm run schema); tests keep
 *  them in step with the code. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { providerOptions } from '../../providers/index.js';
import { packageRoot } from '../util/package-root.js';
import { optionsReference } from './provider-options.js';
import { configJsonSchema } from './schema.js';

export function schemaText(): string {
  const schema = { title: 'tlsa configuration', ...(configJsonSchema() as object) };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

export function providerOptionsText(): string {
  return optionsReference(providerOptions());
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  for (const [file, text] of [
    ['config.schema.json', schemaText()],
    ['providers-options.md', providerOptionsText()],
  ] as const) {
    const out = join(packageRoot(), 'docs', file);
    writeFileSync(out, text);
    console.log(`wrote ${out}`);
  }
}
