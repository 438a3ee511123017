/** loadConfig builds the `yaml` package's document (slow and large for thousands of services)
 *  only when the quick reader steps aside or an error needs its line. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const documents = vi.hoisted(() => ({ built: 0 }));

vi.mock('yaml', async (importOriginal) => {
  const yaml = await importOriginal<typeof import('yaml')>();
  return {
    ...yaml,
    parseDocument: (...args: Parameters<typeof yaml.parseDocument>) => {
      documents.built++;
      return yaml.parseDocument(...args);
    },
  };
});

const { loadConfig } = await import('../../src/config/load.js');

let dir: string;
let n = 0;
beforeAll(() => {
  dir = makeTempDir('tlsa-config-quick-');
});
afterAll(() => {
  if (dir) removeTempDir(dir);
});
beforeEach(() => {
  documents.built = 0;
});

function write(...lines: string[]): string {
  const file = path.join(dir, `c${++n}.yaml`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

const CONFIG = [
  'state_dir: state',
  'providers:',
  '  local: {type: zonefile, path: zone.db}',
  'services:',
  '  mx:',
  '    host: mx.example.org',
  '    provider: local',
  '    certificates:',
  '      - lineage: live/mx',
];

describe('loadConfig and the yaml document', () => {
  it('a plain config is loaded without building it', () => {
    const c = loadConfig(write(...CONFIG));
    expect(c.raw.services.mx!.host).toBe('mx.example.org');
    expect(documents.built).toBe(0);
  });

  it('an error in a plain config builds it once, for the line', () => {
    const lines = [...CONFIG];
    lines[5] = '    host: ""';
    expect(() => loadConfig(write(...lines))).toThrow(/services\.mx\.host/);
    expect(documents.built).toBe(1);
  });

  it('an error found after loading (a provider option) builds it for the line', () => {
    const c = loadConfig(write(...CONFIG));
    expect(c.error(['providers', 'local', 'path'], 'no such zone').line).toBe(3);
    expect(documents.built).toBe(1);
  });

  it('a config outside the plain subset (an anchor) is read through it', () => {
    const lines = [...CONFIG];
    lines[0] = 'state_dir: &s state';
    expect(loadConfig(write(...lines)).raw.state_dir).toBe('state');
    expect(documents.built).toBe(1);
  });
});
