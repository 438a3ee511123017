/** HTTP-01 answers (RFC 8555 §8.3), only for the duration of one order: a token file in a
 *  webroot, or a small server on the configured address that answers nothing else. */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { NetworkError } from '../errors.js';

const PREFIX = '/.well-known/acme-challenge/';

export interface Http01Responder {
  add(token: string, keyAuthorization: string): Promise<void>;
  /** Removes every token and stops the server; safe to call twice. */
  close(): Promise<void>;
}

export function webrootResponder(webroot: string): Http01Responder {
  const dir = join(webroot, PREFIX);
  const files: string[] = [];
  return {
    async add(token, keyAuthorization) {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      const file = join(dir, token);
      writeFileSync(file, keyAuthorization, { mode: 0o644 });
      files.push(file);
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
