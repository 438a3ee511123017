#!/usr/bin/env node
/** Entry point. Kept tiny: `--version` and `--help` must not load the engine, and every
 *  command module is imported only when it runs (a certbot hook is a cold process). */
import { readFileSync } from 'node:fs';
import { packageRoot } from '../util/package-root.js';
import { fail, jsonOutput, printFailure } from './fail.js';
import { parseCommandLine, type CliValues } from './options.js';
import { writeTo } from './pipe-write.js';

/** Each command's module, loaded only when it runs. */
const COMMAND_MODULES: Record<
  string,
  () => Promise<{ run: (v: CliValues, args: string[]) => Promise<number> }>
> = {
  generate: () => import('./generate.js'),
  plan: () => import('./plan.js'),
  publish: () => import('./publish.js'),
  renew: () => import('./renew.js'),
  status: () => import('./status.js'),
  retire: () => import('./retire.js'),
  adopt: () => import('./adopt.js'),
  hook: () => import('./hook.js'),
  daemon: () => import('./daemon.js'),
  check: () => import('./check.js'),
  doctor: () => import('./doctor.js'),
};

async function main(argv: string[]): Promise<number> {
  const line = parseCommandLine(argv);
  switch (line.kind) {
    case 'version': {
      const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as {
        version: string;
      };
      writeTo(process.stdout, `tlsa ${pkg.version}\n`);
      return 0;
    }
    case 'help':
      writeTo(line.code ? process.stderr : process.stdout, line.text);
      return line.code;
    case 'error':
      writeTo(process.stderr, `tlsa: ${line.message}`);
      if (line.json) {
        jsonOutput(line.json.command);
        // The usage that follows a parse error is for humans only.
        printFailure(2, { message: line.message.split('\n\n')[0]!.trimEnd(), kind: 'input' });
      }
      return 2;
    case 'run':
      if (line.values.json) jsonOutput(line.command, { lines: line.command === 'daemon' });
      return (await COMMAND_MODULES[line.command]!()).run(line.values, line.args);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = fail(e);
  },
);
