#!/usr/bin/env node
// Bundles the CLI after `tsc` (npm run build): a config command (plan, status, the certbot
// hook) otherwise spends most of its time loading ~150 modules. Writes into dist/src/cli/:
//   cli-<hash>.cjs        the whole CLI (src/cli/main.ts and everything it imports, zod and
//                         yaml included) as one CommonJS script; the provider SDKs
//                         (@aws-sdk/*, cloudflare), croner and prom-client stay outside,
//                         required only when the provider or the daemon that needs them runs
//   cli-<hash>.cjs.cache  V8's code cache for it (twice: src/cli/code-cache-file.ts), made by
//                         one `plan` on config.example.yaml
//   main.cjs              src/cli/launcher.ts as CommonJS, replacing tsc's main.cjs (the
//                         unbundled CLI's start, main.cts): the path of bin, hooks, units, tests
//   main.js               the same launcher as an ES module, replacing tsc's main.js, for
//                         whatever still names main.js (an ES module entry starts ≈ 12 ms later)
//   `tsc` alone writes the unbundled main.cjs and main.js back.
// Usage: node scripts/bundle.mjs [--out DIR]   (DIR must lie under a directory holding this
// package.json, src/issuers and node_modules, as dist/src/cli does).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { out: { type: 'string' } } });
const out = resolve(values.out ?? join(ROOT, 'dist/src/cli'));

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  // A checkout whose node_modules predates the devDependency: the tsc output still works.
  process.stderr.write(
    'bundle: esbuild is not installed (npm ci): dist/src/cli/main.cjs stays unbundled, slower to start\n',
  );
  process.exit(0);
}

for (const f of readdirSync(out)) {
  // (.cli-….cache.<pid>.tmp: a cache write that a crash cut short)
  if (
    /^cli-[A-Z0-9]+\.cjs(\.cache)?$|^\.cli-[A-Z0-9]+\.cjs\.cache\.\d+\.tmp$/.test(f) ||
    f === 'main.js.map' ||
    f === 'main.cjs.map'
  )
    rmSync(join(out, f));
}

// Node built-ins that plan, status and a hook of an unchanged lineage never call (a reload
// command, a DNS query, a TLS handshake; status and such a hook parse no certificate):
// loading them cost ~4 ms CPU at every start (node:crypto alone ≈ 13 M instructions). In the
// bundle, each of their functions and classes becomes a stub that loads the module on its
// first call (`new` on a class's stub constructs the real class). Only functions and classes
// are stubbed: importing anything else from them fails the build, loudly.
const LAZY_BUILTINS = /^node:(child_process|crypto|dgram|dns\/promises|net|tls)$/;
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(build) {
    build.onResolve({ filter: LAZY_BUILTINS }, (args) =>
      args.namespace === 'lazy-builtin'
        ? { path: args.path, external: true }
        : { path: args.path, namespace: 'lazy-builtin' },
    );
    build.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (args) => {
      const real = await import(args.path);
      const names = Object.keys(real).filter(
        (k) => k !== 'default' && typeof real[k] === 'function' && /^[A-Za-z]\w*$/.test(k),
      );
      const stubs = names.map(
        (n) =>
          `export function ${n}(...args) { const m = load(); return new.target ? new m.${n}(...args) : m.${n}(...args); }`,
      );
      return {
        contents: [
          'let loaded;',
          `const load = () => (loaded ??= require(${JSON.stringify(args.path)}));`,
          ...stubs,
        ].join('\n'),
        loader: 'js',
      };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  legalComments: 'none',
  // A smaller source is read and checked against its code cache faster (~30% fewer bytes).
  // Names are kept: TLSA_DEBUG's stack traces still name the functions.
  minifyWhitespace: true,
  minifySyntax: true,
};
const cli = await esbuild.build({
  ...common,
  entryPoints: { cli: join(ROOT, 'src/cli/main.ts') },
  outdir: out,
  entryNames: '[name]-[hash]',
  outExtension: { '.js': '.cjs' },
  format: 'cjs',
  external: ['@aws-sdk/*', 'acme-client', 'cloudflare', 'croner', 'prom-client'],
  // import() of an external becomes require(), so the bundle needs no ESM loader callbacks.
  supported: { 'dynamic-import': false },
  // The sources are ES modules, strict by definition; package-root.ts finds package.json
  // from import.meta.url, which is the bundle's own location here.
  banner: {
    js: "'use strict'; const __tlsaModuleUrl = require('node:url').pathToFileURL(__filename).href;",
  },
  define: { 'import.meta.url': '__tlsaModuleUrl' },
  metafile: true,
  plugins: [lazyBuiltins],
});
const bundleName = Object.keys(cli.metafile.outputs)
  .map((f) => f.split('/').pop())
  .find((f) => f.endsWith('.cjs'));
if (!bundleName) throw new Error('bundle: esbuild wrote no .cjs file');
writeFileSync(join(out, bundleName), asScript(readFileSync(join(out, bundleName), 'utf8')));

/** The bundle as the one string V8 compiles (run-bundle.ts), so that no copy of it is made at
 *  start: the CommonJS wrapper around it, on its first line (positions in stack traces stay
 *  those of the code), the shebang esbuild keeps from main.ts blanked, and every non-ASCII
 *  character (the status page's "×" and "–", in template literals whose cooked text is used)
 *  escaped: one such character made V8 hold the whole source as two-byte text, twice the size. */
function asScript(code) {
  if (/\\[\u0080-\uffff]/.test(code))
    throw new Error('bundle: an escaped non-ASCII character: escape it in the source instead');
  const ascii = code
    .replace(/^#!.*/, '')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `(function (exports, require, module, __filename, __dirname) {${ascii}\n})`;
}

const launcher = {
  ...common,
  entryPoints: [join(ROOT, 'src/cli/launcher.ts')],
  define: { TLSA_BUNDLE: JSON.stringify(bundleName) },
};
await esbuild.build({
  ...launcher,
  outfile: join(out, 'main.cjs'),
  format: 'cjs',
  // As in the bundle: launcher.ts and package-root.ts ask only for this file's own URL.
  banner: {
    js: "#!/usr/bin/env node\n'use strict'; const __tlsaModuleUrl = require('node:url').pathToFileURL(__filename).href;",
  },
  define: { ...launcher.define, 'import.meta.url': '__tlsaModuleUrl' },
});
await esbuild.build({
  ...launcher,
  outfile: join(out, 'main.js'),
  format: 'esm',
  banner: { js: '#!/usr/bin/env node' },
});

// One representative run writes the code cache (plan reads and changes nothing).
const warm = spawnSync(
  process.execPath,
  [join(out, 'main.cjs'), '--config', join(ROOT, 'config.example.yaml'), 'plan'],
  { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] },
);
if (warm.status !== 0)
  throw new Error(
    `bundle: the bundled CLI failed on config.example.yaml (exit ${warm.status}):\n${warm.stderr}`,
  );
if (!existsSync(join(out, `${bundleName}.cache`)))
  throw new Error('bundle: no code cache was written');
process.stdout.write(
  `bundle: ${join(out, 'main.cjs')} (and main.js) -> ${bundleName} (+ code cache)\n`,
);
