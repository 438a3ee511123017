/** src/engine/state.ts: the state file as written, one record a line (a fleet's state is read
 *  by every run), and read back as the value that was written. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  readState,
  STATE_FILE,
  stateText,
  writeState,
  type StateFile,
} from '../../src/engine/state.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('tlsa-state-file-');
});
afterAll(() => {
  if (dir) removeTempDir(dir);
});

const record = (i: number) => ({
  owner: `_25._tcp.mx${i}.example.org.`,
  usage: 3,
  selector: 1,
  matching: 1,
  data: 'ab'.repeat(32),
  provider: 'local',
  service: `s${i}`,
  ttl: 3600,
  status: 'published' as const,
  addedAt: '2026-01-01T00:00:00.000Z',
  publishedAt: '2026-01-01T00:00:01.000Z',
  seenAt: undefined,
  by: 'publish@host:1',
});

describe('the state file', () => {
  it('holds one record a line and reads back as the value written', () => {
    const state = {
      version: 1,
      records: [
        record(0),
        record(1),
        { ...record(2), held: { why: 'a "quoted" why\nline', at: '2026-01-02T00:00:00.000Z' } },
      ],
      ttls: {
        '_25._tcp.mx0.example.org.': [
          { ttl: 300, at: '2026-01-01T00:00:00.000Z', source: 'before-write', served: 'negative' },
        ],
        'odd "name"': [],
      },
      observed: {},
      extra: undefined,
    } as unknown as StateFile;
    writeState(dir, state);
    const text = fs.readFileSync(path.join(dir, STATE_FILE), 'utf8');
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(state)));
    expect(readState(dir)).toEqual(JSON.parse(JSON.stringify(state)));
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('    {"owner":'))).toHaveLength(3);
    expect(lines[0]).toBe('{');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).not.toContain('seenAt');
    expect(text).not.toContain('extra');
  });

  it('empty lists and maps, and an empty state', () => {
    const state: StateFile = { version: 1, records: [], ttls: {} };
    expect(JSON.parse(stateText(state))).toEqual(state);
    expect(stateText(state)).toBe('{\n  "version": 1,\n  "records": [],\n  "ttls": {}\n}\n');
  });
});
