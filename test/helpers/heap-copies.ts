/** Some of tlsa's code run in a fresh Node process (TypeScript importing src/ by absolute path,
 *  bundled with esbuild): for what a test cannot see in its own, shared worker, such as V8's
 *  heap settings, or how many strings of a value the process holds (stringCopies: a heap
 *  snapshot, taken after a full collection, counts the string objects equal to each value; a
 *  string's identity is not visible from JavaScript). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `body` runs in a fresh Node process, inside an async function, after `imports` (absolute
 *  imports of src/…, bundled by esbuild): what it returns comes back through JSON. */
export function inChild(dir: string, imports: string, body: string): unknown {
  const entry = `
${imports}
const answer = await (async () => { ${body} })();
process.stdout.write(JSON.stringify(answer));
`;
  const out = join(dir, 'in-child.mjs');
  const built = buildSync({
    stdin: { contents: entry, resolveDir: ROOT, loader: 'ts', sourcefile: 'in-child.ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    packages: 'external',
    logLevel: 'silent',
  });
  writeFileSync(out, built.outputFiles[0]!.text);
  const run = spawnSync(process.execPath, [out], { cwd: dir, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`child failed (${run.status}): ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const COUNTED = `
async function counted(values) {
  const chunks = [];
  for await (const c of getHeapSnapshot()) chunks.push(c);
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const t = fields.indexOf('type');
  const n = fields.indexOf('name');
  const counts = values.map(() => 0);
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + t]];
    if (type !== 'string' && type !== 'concatenated string' && type !== 'sliced string') continue;
    const k = values.indexOf(snap.strings[snap.nodes[i + n]]);
    if (k >= 0) counts[k]++;
  }
  return counts;
}`;

/** `body` as for inChild: it must return the values to count, keeping what holds them alive in
 *  `globalThis.kept`. The answer: per value, its number of string copies. */
export function stringCopies(dir: string, imports: string, body: string): number[] {
  return inChild(
    dir,
    `import { getHeapSnapshot } from 'node:v8';\n${imports}`,
    `${COUNTED}\nreturn counted(await (async () => { ${body} })());`,
  ) as number[];
}
