/** readPlainYaml (src/config/plain-yaml.ts), the quick reader of plain block YAML: whatever it
 *  reads, it reads as the `yaml` package does (as load.ts calls it); whatever it cannot, or
 *  what `yaml` refuses, it leaves to `yaml` (undefined). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isScalar, parseDocument, visit } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readPlainYaml } from '../../src/config/plain-yaml.js';
import { fleetConfigLines } from '../helpers/fleet-config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = fs.readFileSync(path.join(ROOT, 'config.example.yaml'), 'utf8');

/** What load.ts gets from `yaml`: the value, or 'refused' (a syntax error or a repeated key). */
function byYaml(text: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false });
  if (doc.errors.length) return 'refused';
  let repeated = false;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const { key } of map.items) {
        if (!isScalar(key)) continue;
        if (seen.has(key.value)) repeated = true;
        seen.add(key.value);
      }
    },
  });
  return repeated ? 'refused' : doc.toJS();
}

/** A fleet's config as bench/scale.ts writes it. */
const fleet = (n: number) =>
  `${fleetConfigLines(n, 'state_dir: state', '/etc/letsencrypt/live').join('\n')}\n`;

const y = (...lines: string[]) => `${lines.join('\n')}\n`;

describe('readPlainYaml reads plain block YAML as yaml does', () => {
  it.each([
    ['config.example.yaml', EXAMPLE],
    ['a fleet of 50 services', fleet(50)],
  ])('%s', (_name, text) => {
    const value = readPlainYaml(text);
    expect(value).not.toBeUndefined();
    expect(value).toStrictEqual(byYaml(text));
  });

  it.each([
    ['scalars of the core schema', y('a: 1', 'b: 0640', 'c: 0o17', 'd: 0x1F', 'e: -2', 'f: +3')],
    ['floats', y('a: 1.5', 'b: .5', 'c: 1e3', 'd: -1.5E-2', 'e: .inf', 'f: -.Inf', 'g: .NaN')],
    ['null and booleans', y('a:', 'b: ~', 'c: null', 'd: NULL', 'e: true', 'f: False', 'g: TRUE')],
    ['words that look special', y('a: nul', 'b: trueish', 'c: 1.2.3', 'd: 0o8', 'e: 12:30')],
    ['comments', y('# head', 'a: b # c', 'd: e#f', '  # indented', 'g:   # nothing', 'h: "x" # y')],
    ['quoted', y('a: "x: y # z"', "b: 'it''s'", 'c: ""', "d: ''", 'e: "  sp  "', 'f: "${ENV}"')],
    ['flow', y('a: [1, "2", x, [], {}]', 'b: {c: d, e: [f, {g: h}]}', 'c: [ a , b ]', 'd: []')],
    ['sequences', y('a:', '  - 1', '  -   x', '  -', '    k: v', '  - - nested', 'b: 2')],
    ['a sequence at its key', y('a:', '- x', '- k: v', '  j: w', 'b:', '- y')],
    ['mappings in sequences', y('- a: 1', '  b:', '    c: 2', '-   d: 3', '    e: [4]', '- f')],
    ['a leading ---', y('--- # doc', 'a: 1')],
    ['odd but plain strings', y('a: http://x/y?z=1&w', 'b: a  b', 'c: ./rel', 'd: 2001:db8::1')],
    ['unicode', y('a: mx.bücher.example', 'b: "\u00a0x\u00a0"', 'c: x\u00a0')],
    ['keys', y('a.b: 1', 'a_b: 2', 'a-b: 3', '1a: 4', 'nul: 5', '_x: 6', 'a/b: 7')],
    ['an indented document', y('  a: 1', '  b:', '    - 2')],
  ])('%s', (_name, text) => {
    const value = readPlainYaml(text);
    const expected = byYaml(text);
    expect(expected).not.toBe('refused');
    // Whatever is read must equal yaml's value; these common forms are read, except the
    // nested "- - x" entry, which is left to yaml.
    if (value !== undefined) expect(value).toStrictEqual(expected);
    if (!text.includes('- - ')) expect(value).not.toBeUndefined();
  });
});

describe('readPlainYaml leaves the rest to yaml', () => {
  it.each([
    ['an anchor and alias', y('a: &x 1', 'b: *x')],
    ['a merge key', y('base: &b {x: 1}', 'c:', '  <<: *b', '  y: 2')],
    ['a tag', y('a: !!str 5')],
    ['a block scalar', y('a: |', '  text')],
    ['a folded scalar', y('a: >-', '  text')],
    ['a plain scalar over two lines', y('a: one', '  two')],
    ['a quoted scalar over two lines', y('a: "one', '  two"')],
    ['a flow collection over two lines', y('a: [1,', '  2]')],
    ['an escape', y('a: "x\\ty"')],
    ['a repeated key', y('a: 1', 'a: 2')],
    ['a repeated key in flow', y('a: {b: 1, b: 2}')],
    ['a repeated key deep down', y('s:', '  x:', '    k: 1', '    k: 2')],
    ['a numeric key', y('1: a')],
    ['a boolean key', y('true: a')],
    ['a null key', y('~: a')],
    ['a quoted key', y('"a": 1')],
    ['an explicit key', y('? a', ': 1')],
    ['a key named __proto__', y('__proto__: {a: 1}')],
    ['a second document', y('a: 1', '---', 'b: 2')],
    ['a document end', y('a: 1', '...')],
    ['a directive', y('%YAML 1.2', '---', 'a: 1')],
    ['a tab', 'a:\t1\n'],
    ['CRLF line ends', 'a: 1\r\nb: 2\r\n'],
    ['a byte order mark', '\ufeffa: 1\n'],
    ['a scalar document', 'just text\n'],
    ['an empty document', '# nothing\n'],
    ['a top-level flow collection', '{a: 1}\n'],
    ['a trailing comma', y('a: [1, 2, ]')],
    ['a colon in a flow scalar', y('a: [x:y]')],
    ['a block entry in a flow collection', y('a: [- 1]')],
    ['bad indentation', y('a:', '    b: 1', '  c: 2')],
    ['a key after a sequence at a deeper indent', y('a:', '  - 1', '  b: 2')],
    ['text after a flow collection', y('a: [1] x')],
    ['a mapping in a value', y('a: b: c')],
    ['nesting deeper than the stack', y(`a: ${'['.repeat(100_000)}${']'.repeat(100_000)}`)],
    // yaml refuses this (its parser runs out of stack), so it is not read either
    ['flow nesting 1,000 deep', y(`a: ${'['.repeat(1000)}${']'.repeat(1000)}`)],
    ['flow mappings nested 1,000 deep', y(`a: ${'{b: '.repeat(1000)}1${'}'.repeat(1000)}`)],
  ])('%s', (_name, text) => {
    expect(readPlainYaml(text)).toBeUndefined();
  });
});

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NOISE = [' ', '  ', '\n', '-', '- ', ':', ': ', '#', ' #', "'", '"', '[', ']', '{', '}', ','];
const NOISE_MORE = [
  '&a ',
  '*a',
  '!',
  '|',
  '>',
  '?',
  '0',
  '.',
  '~',
  '\t',
  '\\',
  '%',
  '@',
  'x',
  '1e',
];

/** One to three random edits: insert noise, delete or repeat text, shift a line's indent. */
function mutate(text: string, next: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  let out = text;
  const edits = 1 + Math.floor(next() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(next() * out.length);
    const kind = Math.floor(next() * 5);
    if (kind === 0) out = out.slice(0, at) + pick([...NOISE, ...NOISE_MORE]) + out.slice(at);
    else if (kind === 1) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(next() * 4));
    else if (kind === 2) {
      const start = out.lastIndexOf('\n', at) + 1;
      const end = out.indexOf('\n', at) + 1 || out.length;
      out = out.slice(0, end) + out.slice(start, end) + out.slice(end);
    } else {
      const start = out.lastIndexOf('\n', at) + 1;
      out =
        kind === 3
          ? `${out.slice(0, start)}  ${out.slice(start)}`
          : out.slice(0, start) + out.slice(start).replace(/^ {1,2}/, '');
    }
  }
  return out;
}

describe('readPlainYaml never disagrees with yaml', () => {
  // Random edits of real configurations: each result is either refused by both (yaml's error
  // then names the line), left to yaml, or read to yaml's very value.
  const bases: [string, string, number][] = [
    ['config.example.yaml', EXAMPLE, 500],
    ['a fleet', fleet(3), 1500],
    [
      'flow and quotes',
      y(
        'providers:',
        "  p: {type: zonefile, path: 'z.zone', create: true}",
        'services:',
        '  a:',
        '    host: "mx.example.org"',
        '    ports: [25, {port: 465, protocol: smtps}]',
        '    records: ["3 1 1"]',
        '    certificates:',
        '    - {fullchain: f.pem, key: k.pem}',
      ),
      1500,
    ],
  ];
  it.each(bases)('%s, %i random edits', (_name, base, edits) => {
    const next = random(13);
    let read = 0;
    for (let i = 0; i < edits; i++) {
      const text = mutate(base, next);
      const value = readPlainYaml(text);
      if (value === undefined) continue;
      read++;
      const expected = byYaml(text);
      if (expected === 'refused' || !isDeepEqual(value, expected))
        expect.fail(`disagrees with yaml (${String(expected)}) on:\n${text}`);
    }
    // Most single edits leave a config that is still plain: the comparison is not vacuous.
    expect(read).toBeGreaterThan(edits / 8);
  });
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    expect(a).toStrictEqual(b);
    return true;
  } catch {
    return false;
  }
}
