import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/options.js';
import { COMMAND_NAMES, mayWriteCodeCache } from '../../src/cli/run-bundle.js';

describe('which runs may write the code cache', () => {
  it('knows every command of the CLI', () => {
    expect([...COMMAND_NAMES].sort()).toEqual(Object.keys(COMMANDS).sort());
  });

  it('a config command may, wherever its name stands', () => {
    for (const argv of [
      ['plan'],
      ['--config', 'c.yaml', 'plan'],
      ['-c', 'c.yaml', 'status', '--json'],
      ['--config', 'c.yaml', 'hook', 'certbot'],
      ['publish', '--service', 'mx'],
      ['daemon', '--once'],
    ])
      expect(mayWriteCodeCache(argv), argv.join(' ')).toBe(true);
  });

  it('help, the version, no command, an unknown one or one that compiles little may not', () => {
    for (const argv of [
      [],
      ['--help'],
      ['-h'],
      ['--version'],
      ['-V'],
      ['plan', '--help'],
      ['--config', 'c.yaml', 'status', '-h'],
      ['nope'],
      ['generate', '--chain', 'f.pem', '--host', 'mx.example.org'],
      // the first command word counts: "plan" here is a host name
      ['generate', '--host', 'plan'],
      ['check', '--host', 'mx.example.org'],
      ['doctor'],
    ])
      expect(mayWriteCodeCache(argv), argv.join(' ')).toBe(false);
  });
});
