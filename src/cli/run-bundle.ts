/** Running the CLI bundle (scripts/bundle.mjs) with V8's code cache; see launcher.ts. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';
import { readCodeCache, writeCodeCache } from './code-cache-file.js';

/** Every command of the CLI (options.ts has them with their help; a unit test keeps the two in
 *  step). Listed here so that the launcher need not load the option table. */
export const COMMAND_NAMES = [
  'generate',
  'plan',
  'publish',
  'renew',
  'status',
  'retire',
  'adopt',
  'hook',
  'daemon',
  'check',
  'doctor',
] as const;

/** The commands whose run compiles what every config command's start needs (the YAML reader,
 *  the validator, the engine). */
const CACHE_WRITERS: ReadonlySet<string> = new Set([
  'plan',
  'publish',
  'renew',
  'status',
  'retire',
  'adopt',
  'hook',
  'daemon',
]);
const COMMANDS: ReadonlySet<string> = new Set(COMMAND_NAMES);

/** Whether a successful run of this command line may write the code cache. V8 puts in a cache
 *  only the functions compiled so far, and a cache it accepts is never written again: written
 *  by `--help`, `generate` or a run that stopped at a bad config, it would leave every later
 *  `plan` or hook compiling the config reader and the engine anew (≈ 100 M instructions more a
 *  start) until the next build. Only an approximation of options.ts's parse: a wrong answer
 *  costs start-up time, never behaviour. */
export function mayWriteCodeCache(argv: string[]): boolean {
  const asksHelp = argv.some(
    (a) => a === '--help' || a === '--version' || /^-[A-Za-z]*[hV]/.test(a),
  );
  const command = argv.find((a) => COMMANDS.has(a));
  return !asksHelp && command !== undefined && CACHE_WRITERS.has(command);
}

/** Run a CommonJS bundle with its V8 code cache. The cache is written by the build (after a
 *  representative run, so that it holds the functions a config command compiles) and again,
 *  when it was missing, damaged (code-cache-file.ts) or rejected (another Node version, other
 *  V8 flags), at the end of a run
 *  that succeeded (exit 0) and that `mayWriteCodeCache` allows: best effort, an install
 *  directory may be read-only. The bundle's file name carries its content hash, so a cache
 *  never outlives the code it was made from (V8 itself checks only the source length). */
export function runBundle(bundleFile: string, argv: string[]): void {
  // Already wrapped as a function expression, ASCII only, by scripts/bundle.mjs: the string
  // read is the one V8 compiles, with no copy made of it.
  const source = readFileSync(bundleFile, 'latin1');
  const cacheFile = `${bundleFile}.cache`;
  const cachedData = readCodeCache(cacheFile);
  const script = new Script(source, {
    filename: bundleFile,
    ...(cachedData ? { cachedData } : {}),
  });
  if ((!cachedData || script.cachedDataRejected) && mayWriteCodeCache(argv))
    process.once('exit', (code) => {
      if (code === 0) writeCodeCache(cacheFile, () => script.createCachedData());
    });
  const module = { exports: {} };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, createRequire(bundleFile), module, bundleFile, dirname(bundleFile));
}
