/** src/util/read-input.ts and the loaders that use it: anything but a regular file of sane size
 *  is refused at once, naming the path and what it is. Opening a FIFO for reading waits for a
 *  writer, synchronously, where no test timeout can interrupt it: each FIFO here has a writer
 *  process that opens it every few seconds, so code that blocks fails (it reads an empty file)
 *  instead of hanging the suite. The CLI tests cover the same through a child's timeout. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChain } from '../../src/certs/chain.js';
import { loadConfig } from '../../src/config/load.js';
import { InputError } from '../../src/errors.js';
import { loadCatalog } from '../../src/issuers/catalog.js';
import { InputFileError, MAX_PEM_BYTES, readInputText } from '../../src/util/read-input.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
let fifo: string;
let socketPath: string;
let server: Server;
const writers: ChildProcess[] = [];

/** A FIFO, and a writer that unblocks a reader stuck on it within 3 s. */
function guardedFifo(p: string): string {
  execFileSync('mkfifo', [p]);
  const w = spawn('/bin/sh', ['-c', 'while :; do sleep 3; : > "$0"; done', p], {
    detached: true,
    stdio: 'ignore',
  });
  writers.push(w);
  return p;
}

beforeAll(async () => {
  dir = makeTempDir('tlsa-read-input-');
  fifo = guardedFifo(path.join(dir, 'pipe.pem'));
  socketPath = path.join(dir, 'sock.pem');
  server = createServer();
  await new Promise<void>((res) => server.listen(socketPath, res));
});

afterAll(async () => {
  // Each writer is the leader of its own process group (detached): end it and its sleep.
  for (const w of writers)
    if (w.pid)
      try {
        process.kill(-w.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
  await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
  if (dir) removeTempDir(dir);
});

function refusal(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('no error');
}

const EXAMPLE_CHAIN = path.join(
  process.cwd(),
  'docs/example/letsencrypt/live/mx.example.org/fullchain.pem',
);
const pem = (file: string) =>
  readInputText(file, { what: 'certificate file', maxBytes: MAX_PEM_BYTES });

describe('readInputText', () => {
  it("reads a regular file, and one through a symlink (certbot's live/)", () => {
    const f = path.join(dir, 'real.pem');
    fs.writeFileSync(f, 'hello\n');
    const link = path.join(dir, 'link.pem');
    fs.symlinkSync(f, link);
    expect(pem(f)).toBe('hello\n');
    expect(pem(link)).toBe('hello\n');
  });

  it('a FIFO is refused without blocking, naming the path', () => {
    const e = refusal(() => pem(fifo));
    expect(e).toBeInstanceOf(InputFileError);
    expect(e.file).toBe(fifo);
    expect(e.message).toBe(
      'cannot read certificate file: it is a FIFO (named pipe), not a regular file',
    );
  });

  it('a symlink to a FIFO is refused too', () => {
    const link = path.join(dir, 'to-fifo.pem');
    fs.symlinkSync(fifo, link);
    expect(refusal(() => pem(link)).message).toMatch(/FIFO/);
  });

  it('/dev/zero (a character device) is refused', () => {
    expect(refusal(() => pem('/dev/zero')).message).toMatch(
      /it is a character device, not a regular file/,
    );
  });

  it('a directory is refused', () => {
    expect(refusal(() => pem(dir)).message).toMatch(/it is a directory, not a regular file/);
  });

  it('a Unix socket is refused', () => {
    expect(refusal(() => pem(socketPath)).message).toMatch(/it is a socket, not a regular file/);
  });

  it('a (sparse) file over the limit is refused before it is read', () => {
    const big = path.join(dir, 'big.pem');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 8 * 1024 * 1024 * 1024);
    expect(refusal(() => pem(big)).message).toMatch(/more than 1 MiB/);
    const small = path.join(dir, 'small.pem');
    fs.writeFileSync(small, 'x'.repeat(100));
    expect(
      refusal(() => readInputText(small, { what: 'secret file', maxBytes: 99 })).message,
    ).toMatch(/more than 99 bytes/);
  });

  it('a missing file says so', () => {
    expect(refusal(() => pem(path.join(dir, 'gone.pem'))).message).toBe(
      'cannot read certificate file: file not found',
    );
  });
});

describe('the loaders refuse a FIFO', () => {
  it('loadChain: as fullchain and as key', () => {
    const asChain = refusal(() => loadChain({ kind: 'files', fullchain: fifo }));
    expect([asChain.file, asChain.message]).toEqual([
      fifo,
      'cannot read certificate file: it is a FIFO (named pipe), not a regular file',
    ]);
    const asKey = refusal(() => loadChain({ kind: 'files', fullchain: EXAMPLE_CHAIN, key: fifo }));
    expect([asKey.file, asKey.message]).toEqual([
      fifo,
      'cannot read private key file: it is a FIFO (named pipe), not a regular file',
    ]);
  });

  it('loadChain: a lineage whose privkey.pem is a FIFO is refused, not read as "no key"', () => {
    const live = path.join(dir, 'live-fifo-key');
    fs.mkdirSync(live);
    fs.copyFileSync(EXAMPLE_CHAIN, path.join(live, 'fullchain.pem'));
    guardedFifo(path.join(live, 'privkey.pem'));
    const e = refusal(() => loadChain({ kind: 'lineage', dir: live }));
    expect(e.file).toBe(path.join(live, 'privkey.pem'));
    expect(e.message).toMatch(/private key file: it is a FIFO/);
  });

  it('loadCatalog', () => {
    expect(refusal(() => loadCatalog(fifo)).message).toMatch(
      /cannot read the issuer catalog: it is a FIFO/,
    );
  });

  it('loadConfig: the configuration itself, and a *_file secret (at its line)', () => {
    expect(refusal(() => loadConfig(fifo)).message).toMatch(
      /cannot read the configuration: it is a FIFO/,
    );
    const cfg = path.join(dir, 'secret-fifo.yaml');
    fs.writeFileSync(
      cfg,
      [
        'providers:',
        '  p:',
        '    type: zonefile',
        `    token_file: ${fifo}`,
        'services: {}',
        '',
      ].join('\n'),
    );
    const e = refusal(() => loadConfig(cfg));
    expect(e.line).toBe(4);
    expect(e.message).toMatch(/token_file: cannot read secret file .*pipe\.pem: it is a FIFO/);
  });
});
