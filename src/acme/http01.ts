/** HTTP-01 answers (RFC 8555 §8.3), only for the duration of one order: a token file in a
 *  webroot, or a small server on the configured address that answers nothing else. */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { InputError, NetworkError, ProviderError, errnoCode } from '../errors.js';

const PREFIX = '/.well-known/acme-challenge/';

export interface Http01Responder {
  add(token: string, keyAuthorization: string): Promise<void>;
  /** Removes every token and stops the server; safe to call twice. */
  close(): Promise<void>;
}

/** RFC 8555 §8.3: a token is base64url. Anything else (a "../" from a broken or hostile CA)
 *  would name a file outside the challenge directory. */
export function checkToken(token: string): void {
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(token))
    throw new ProviderError('acme', 'the CA sent a challenge token that is not base64url');
}

/** The webroot usually belongs to the web server's user while tlsa may run as root: a
 *  symlink planted at .well-known or acme-challenge would make tlsa write where that user
 *  points it, so each directory below the webroot must be a real directory (made if missing). */
function challengeDir(webroot: string): string {
  let dir = webroot;
  for (const part of ['.well-known', 'acme-challenge']) {
    dir = join(dir, part);
    try {
      mkdirSync(dir, { mode: 0o755 });
      // The web server must read it whatever tlsa's umask (a root cron job's is often 077).
      chmodSync(dir, 0o755);
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST')
        throw new InputError(`cannot make the challenge directory: ${errnoCode(e)}`, dir);
    }
    if (!lstatSync(dir).isDirectory())
      throw new InputError(
        'the webroot challenge path must be a directory, not a symlink or another file',
        dir,
      );
  }
  return dir;
}

export function webrootResponder(webroot: string): Http01Responder {
  const files: string[] = [];
  return {
    async add(token, keyAuthorization) {
      checkToken(token);
      const file = join(challengeDir(webroot), token);
      // O_EXCL: never through a link or into a file someone else made under that name.
      rmSync(file, { force: true });
      const fd = openSync(
        file,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      );
      files.push(file);
      try {
        fchmodSync(fd, 0o644);
        writeSync(fd, keyAuthorization);
      } finally {
        closeSync(fd);
      }
    },
    async close() {
      for (const f of files.splice(0)) rmSync(f, { force: true });
    },
  };
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address)!;
  return { host: m[1]!, port: Number(m[2]) };
}

export async function standaloneResponder(address: string): Promise<Http01Responder> {
  const tokens = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const answer = path.startsWith(PREFIX) ? tokens.get(path.slice(PREFIX.length)) : undefined;
    res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' });
    res.end(answer ?? '');
  });
  const { host, port } = splitAddress(address);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new NetworkError(
          `cannot listen on ${address} for the HTTP-01 challenge: ${e.code ?? e.message}`,
          'is another server on that port? (webroot: serves the token through it)',
        ),
      ),
    );
    server.listen(port, host, () => resolveListen());
  });
  let closed = false;
  return {
    async add(token, keyAuthorization) {
      checkToken(token);
      tokens.set(token, keyAuthorization);
    },
    async close() {
      tokens.clear();
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
