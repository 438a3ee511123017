/** Entry point of the built CLI (`npm run build` bundles it as dist/src/cli/main.cjs, the
 *  package's bin, and as dist/src/cli/main.js; see scripts/bundle.mjs): runs the whole CLI,
 *  bundled into one CommonJS file, from V8's code cache. A certbot hook or a timer is a cold
 *  process, and on Node 20 (no module.enableCompileCache) reading, linking and compiling ~150
 *  modules (zod, yaml, ours) cost more than everything the command then does. The bundle is one script that V8 takes
 *  precompiled from `<bundle>.cache`; provider SDKs stay outside it, loaded only by the
 *  provider that needs them. main.cjs is this file built as CommonJS: an ES module entry costs
 *  Node's ESM loader (≈ 12 ms of CPU) before any of tlsa's code runs. `tsc` alone writes the
 *  unbundled main.js and main.cjs (main.cts) back (slower, same behaviour). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../util/package-root.js';
import { runBundle } from './run-bundle.js';
import { writeTo } from './pipe-write.js';

/** `--version` alone is answered here: deserialising the whole CLI's code to print one
 *  line would make the cheapest command slower than it was unbundled. Same output as main.ts. */
function printVersionOnly(argv: string[]): boolean {
  if (argv.length !== 1 || (argv[0] !== '--version' && argv[0] !== '-V')) return false;
  const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as {
    version: string;
  };
  writeTo(process.stdout, `tlsa ${pkg.version}\n`);
  return true;
}

/** Set by scripts/bundle.mjs to the bundle's file name (it carries a content hash). */
declare const TLSA_BUNDLE: string;

const argv = process.argv.slice(2);
if (!printVersionOnly(argv)) {
  runBundle(fileURLToPath(new URL(`./${TLSA_BUNDLE}`, import.meta.url)), argv);
}
