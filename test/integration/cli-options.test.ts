/**
 * Each command's options: `tlsa COMMAND --help` prints that command's own help (its options,
 * examples), and an option the command does not take is bad input (exit 2, naming the option
 * and the command) before anything runs: no zone written, no state created.
 *
 * The refusals run on a copy of the README quick start (config.example.yaml with the zonefile
 * provider), with DNS verification off and the resolver on a closed loopback port, so that a
 * command that ignored the option would visibly do its work, and nothing leaves the machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runCli, show, stackLines } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

/** The options each command reads (besides -h/--help): the contract its help states. */
const TAKES: Record<string, string[]> = {
  generate: [
    '--chain',
    '--key',
    '--host',
    '--port',
    '--protocol',
    '--records',
    '--issuers',
    '--ttl',
    '--explain',
    '--json',
  ],
  plan: ['--config', '--service', '--json', '--all'],
  publish: ['--config', '--service', '--json', '--all', '--force', '--lock-wait'],
  status: ['--config', '--service', '--json'],
  retire: ['--config', '--service', '--json', '--dry-run', '--lock-wait'],
  adopt: ['--config', '--service', '--json', '--dry-run', '--lock-wait'],
  check: ['--config', '--json', '--resolver', '--auth-port', '--timeout', '--protocol'],
  hook: ['--config', '--json', '--force', '--lock-wait', '--log-format'],
  daemon: ['--config', '--service', '--json', '--once', '--force', '--lock-wait', '--log-format'],
  doctor: [
    '--postfix-dir',
    '--tlsa-file',
    '--host',
    '--json',
    '--resolver',
    '--offline',
    '--timeout',
  ],
};

let dir: string;

beforeAll(() => {
  requireBuiltCli();
  dir = makeTempDir('tlsa-cli-options-');
  const example = fs.readFileSync(path.join(REPO_ROOT, 'config.example.yaml'), 'utf8');
  const offline = example
    .replace('resolver: system', 'resolver: 127.0.0.1:9')
    .replace('propagation: true', 'propagation: false')
    .replace('probe: true', 'probe: false');
  expect(offline).not.toBe(example);
  fs.writeFileSync(path.join(dir, 'config.yaml'), offline);
  fs.cpSync(path.join(REPO_ROOT, 'docs', 'example'), path.join(dir, 'docs', 'example'), {
    recursive: true,
  });
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

/** The long options listed under "Options:" in a help text. */
function listedOptions(help: string): string[] {
  const section = help.split(/^Options:$/m)[1]?.split(/^\S/m)[0] ?? '';
  return [...section.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!);
}

describe('tlsa COMMAND --help', () => {
  for (const [command, takes] of Object.entries(TAKES)) {
    it(`${command} --help prints ${command}'s own options and examples, exit 0`, () => {
      const r = runCli([command, '--help'], { cwd: dir });
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n')[0]).toMatch(new RegExp(`^Usage: tlsa .*\\b${command}\\b`));
      expect(r.stdout).not.toMatch(/^Usage: tlsa \[--config FILE\] COMMAND/);
      expect(listedOptions(r.stdout).sort()).toEqual([...takes, '--help'].sort());
      const examples = (
        r.stdout
          .split(/^Examples:$/m)[1]
          ?.split('\n\n')[0]
          ?.trim()
          .split('\n') ?? []
      ).map((l) => l.trim());
      expect(examples.length, r.stdout).toBeGreaterThan(0);
      for (const e of examples) expect(e).toMatch(new RegExp(`^tlsa .*\\b${command}\\b`));
    });
  }

  it('-h after the command is the same help; --help without a command keeps the overview', () => {
    expect(runCli(['status', '-h']).stdout).toBe(runCli(['status', '--help']).stdout);
    const r = runCli(['--help']);
    expect(r.code, show(r)).toBe(0);
    for (const command of Object.keys(TAKES))
      expect(r.stdout).toMatch(new RegExp(`^ {2}${command}\\s`, 'm'));
    expect(r.stdout).toContain('tlsa COMMAND --help');
  });
});

describe('an option the command does not take', () => {
  const config = () => ['--config', 'config.yaml'];
  // Relative to the test's directory, the CLI's working directory.
  const chain = () => 'docs/example/letsencrypt/live/mx.example.org/fullchain.pem';
  const cases: {
    command: string;
    option: string;
    args: () => string[];
    env?: () => Record<string, string>;
  }[] = [
    { command: 'publish', option: '--dry-run', args: () => [...config(), 'publish', '--dry-run'] },
    { command: 'publish', option: '--dry-run', args: () => ['--dry-run', ...config(), 'publish'] },
    { command: 'status', option: '--force', args: () => [...config(), 'status', '--force'] },
    {
      command: 'status',
      option: '--lock-wait',
      args: () => [...config(), 'status', '--lock-wait', '2'],
    },
    { command: 'plan', option: '--force', args: () => [...config(), 'plan', '--force'] },
    { command: 'retire', option: '--force', args: () => [...config(), 'retire', '--force'] },
    { command: 'adopt', option: '--once', args: () => [...config(), 'adopt', '--once'] },
    {
      command: 'daemon',
      option: '--dry-run',
      args: () => [...config(), 'daemon', '--once', '--dry-run'],
    },
    {
      command: 'hook',
      option: '--service',
      args: () => [...config(), 'hook', 'certbot', '--service', 'mx'],
      env: () => ({
        RENEWED_LINEAGE: path.join(dir, 'docs/example/letsencrypt/live/mx.example.org'),
      }),
    },
    {
      command: 'check',
      option: '--service',
      args: () => [
        ...config(),
        'check',
        'mx.example.org',
        '--service',
        'mx',
        '--resolver',
        '127.0.0.1:9',
        '--timeout',
        '1',
      ],
    },
    {
      command: 'generate',
      option: '--config',
      args: () => [
        ...config(),
        'generate',
        '--chain',
        chain(),
        '--host',
        'mx.example.org',
        '--issuers',
        'none',
      ],
    },
    {
      command: 'doctor',
      option: '--force',
      args: () => ['doctor', 'postfix', '--offline', '--force'],
    },
  ];
  for (const c of cases) {
    it(`${c.args().join(' ')}: exit 2 naming ${c.option} and ${c.command}, nothing done`, () => {
      const r = runCli(c.args(), { cwd: dir, ...(c.env ? { env: c.env() } : {}) });
      expect(r.code, show(r)).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`tlsa: ${c.command} does not take ${c.option}`);
      expect(r.stderr).toContain(`tlsa ${c.command} --help`);
      expect(stackLines(r.all)).toEqual([]);
      expect(fs.existsSync(path.join(dir, 'example.zone'))).toBe(false);
      expect(fs.existsSync(path.join(dir, '.tlsa-state'))).toBe(false);
    });
  }

  it('a short option is named in both spellings', () => {
    const r = runCli(['doctor', 'postfix', '-c', 'config.yaml'], { cwd: dir });
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('doctor does not take -c (--config)');
    expect(r.stderr).toContain('--postfix-dir');
  });
});
