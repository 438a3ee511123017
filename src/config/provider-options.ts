/** What the providers' option declarations say, for editors and readers: the JSON Schema of a
 *  `providers.<name>` block (one alternative per type: its options, nothing else, the required
 *  ones required) and the options reference, docs/providers-options.md. Pure text: no adapter
 *  is loaded. */
import type { OptionSpec, ProviderOptions } from '../../providers/options.js';

type JsonSchema = Record<string, unknown>;

function optionSchema(spec: OptionSpec): JsonSchema {
  const doc = { description: spec.doc };
  switch (spec.type) {
    case 'string':
      return {
        type: 'string',
        minLength: 1,
        ...(spec.oneOf ? { enum: [...spec.oneOf] } : {}),
        ...(spec.default !== undefined ? { default: spec.default } : {}),
        ...doc,
      };
    case 'number':
      return {
        type: spec.integer ? 'integer' : 'number',
        ...(spec.min !== undefined ? { minimum: spec.min } : {}),
        ...(spec.max !== undefined ? { maximum: spec.max } : {}),
        ...(spec.above !== undefined ? { exclusiveMinimum: spec.above } : {}),
        default: spec.default,
        ...doc,
      };
    case 'boolean':
      return { type: 'boolean', default: spec.default, ...doc };
    case 'command':
      return {
        anyOf: [
          { type: 'string', minLength: 1 },
          { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
        ],
        ...doc,
      };
  }
}

/** One provider type's blocks: a secret may be written `<option>_file: PATH` instead, so a
 *  required secret gives two blocks, one with each spelling (never both). Whole blocks rather
 *  than a oneOf of `required` lists, which validators without a type on the branch misread. */
export function providerBlockSchemas(declaration: ProviderOptions): JsonSchema[] {
  let blocks = [
    {
      properties: {
        type: { const: declaration.provider, description: 'Provider type' },
      } as JsonSchema,
      required: ['type'],
      fromFile: [] as string[],
    },
  ];
  for (const [key, spec] of Object.entries(declaration.options)) {
    const secret = spec.type === 'string' && spec.secret;
    const asFile = { type: 'string', minLength: 1, description: `File holding ${key} (chmod 600)` };
    if (secret && spec.required) {
      blocks = blocks.flatMap((b) => [
        {
          ...b,
          properties: { ...b.properties, [key]: optionSchema(spec) },
          required: [...b.required, key],
        },
        {
          properties: { ...b.properties, [`${key}_file`]: asFile },
          required: [...b.required, `${key}_file`],
          fromFile: [...b.fromFile, key],
        },
      ]);
      continue;
    }
    for (const b of blocks) {
      b.properties[key] = optionSchema(spec);
      if (secret) b.properties[`${key}_file`] = asFile;
      if (spec.required) b.required.push(key);
    }
  }
  return blocks.map((b) => ({
    type: 'object',
    description: `${declaration.provider} provider${b.fromFile.length ? ` (${b.fromFile.join(', ')} from a file)` : ''}`,
    properties: b.properties,
    required: b.required,
    additionalProperties: false,
  }));
}

/** A `providers.<name>` block: exactly one type's block (the `type` const picks it). */
export function providersBlockSchema(declarations: ProviderOptions[]): JsonSchema {
  return {
    description:
      'A DNS provider instance: "type" picks the adapter, the other keys are its options (docs/providers-options.md)',
    oneOf: declarations.flatMap(providerBlockSchemas),
  };
}

function defaultText(spec: OptionSpec): string {
  if (spec.required) return 'required';
  if (!('default' in spec) || spec.default === undefined) return '';
  return `\`${String(spec.default)}\``;
}

function typeText(spec: OptionSpec): string {
  switch (spec.type) {
    case 'string':
      return `${spec.oneOf ? spec.oneOf.join(' \\| ') : 'string'}${spec.secret ? ', secret' : ''}`;
    case 'number': {
      const bounds = [
        spec.above !== undefined ? `> ${spec.above}` : '',
        spec.min !== undefined ? `≥ ${spec.min}` : '',
        spec.max !== undefined ? `≤ ${spec.max}` : '',
      ].filter(Boolean);
      return `${spec.integer ? 'integer' : 'number'}${bounds.length ? ` ${bounds.join(', ')}` : ''}`;
    }
    case 'boolean':
      return 'true \\| false';
    case 'command':
      return 'argv list or shell string';
  }
}

/** docs/providers-options.md: one table per provider type, from the declarations. */
export function optionsReference(declarations: ProviderOptions[]): string {
  const parts = [
    '# Provider options',
    '',
    'Generated from the declarations in providers/<type>-options.ts by `npm run schema`; do not edit.',
    'A secret may be written `${ENV_VAR}` or `<option>_file: PATH` (read at load, chmod 600);',
    'secrets never appear in messages. Unknown options are refused.',
  ];
  for (const d of declarations) {
    parts.push(
      '',
      `## ${d.provider}`,
      '',
      '| option | type | default | meaning |',
      '|---|---|---|---|',
    );
    for (const [key, spec] of Object.entries(d.options))
      parts.push(
        `| \`${key}\` | ${typeText(spec)} | ${defaultText(spec)} | ${spec.doc.replaceAll('|', '\\|')} |`,
      );
  }
  return `${parts.join('\n')}\n`;
}
