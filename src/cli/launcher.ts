/** Entry point of the built CLI (`npm run build` bundles it as dist/src/cli/main.js; see
 *  scripts/bundle.mjs): runs the whole CLI, bundled into one CommonJS file, from V8's code
 *  cache. A certbot hook or a timer is a cold process, and on Node 20 (no
 *  module.enableCompileCache) reading, linking and compiling ~150 modules (zod, yaml, ours)
 *  cost more than everything the command then does. The bundle is one script that V8 takes
 *  precompiled from `<bundle>.cache`; provider SDKs stay outside it, loaded only by the
 *  provider that needs them. `tsc` alone writes the unbundled main.js back (slower, same behaviour). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../util/package-root.js';
import { runBundle } from './run-bundle.js';

/** `--version` alone is answered here: deserialising the whole CLI's code to print one
 *  line would make the cheapest command slower than it was unbundled. Same output as main.ts. */
function printVersionOnly(argv: string[]): boolean {
  if (argv.length !== 1 || (argv[0] !== '--version' && argv[0] !== '-V')) return false;
  const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as {
    version: string;
  };
  process.stdout.write(`tlsa ${pkg.version}\n`);
  return true;
}

/** Set by scripts/bundle.mjs to the bundle's file name (it carries a content hash). */
declare const TLSA_BUNDLE: string;

if (!printVersionOnly(process.argv.slice(2))) {
  runBundle(fileURLToPath(new URL(`./${TLSA_BUNDLE}`, import.meta.url)));
}
