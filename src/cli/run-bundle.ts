/** Running the CLI bundle (scripts/bundle.mjs) with V8's code cache; see launcher.ts. */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

/** Run a CommonJS bundle with its V8 code cache. The cache is written by the build (after a
 *  representative run, so that it holds the functions a config command compiles) and again
 *  after any run that found it missing or rejected (another Node version): best effort, an
 *  install directory may be read-only. The bundle's file name carries its content hash, so a
 *  cache never outlives the code it was made from (V8 itself checks only the source length). */
export function runBundle(bundleFile: string): void {
  // Already wrapped as a function expression, ASCII only, by scripts/bundle.mjs: the string
  // read is the one V8 compiles, with no copy made of it.
  const source = readFileSync(bundleFile, 'latin1');
  const cacheFile = `${bundleFile}.cache`;
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new Script(source, {
    filename: bundleFile,
    ...(cachedData ? { cachedData } : {}),
  });
  if (!cachedData || script.cachedDataRejected)
    process.once('exit', () => writeCache(cacheFile, script));
  const module = { exports: {} };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, createRequire(bundleFile), module, bundleFile, dirname(bundleFile));
}

function writeCache(cacheFile: string, script: Script): void {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, cacheFile);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
  }
}
