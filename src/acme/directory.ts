/** The ACME directory: its URL from the configured name, and its document (for meta.profiles),
 *  fetched here so that an unreachable CA is one clear network error before anything else. */
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { NetworkError } from '../errors.js';
import type { DirectoryMeta } from './profile.js';

const NAMED: Record<string, string> = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

export function directoryUrlOf(configured: string): string {
  return NAMED[configured] ?? configured;
}

export interface AcmeDirectory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  renewalInfo?: string;
  meta?: DirectoryMeta & Record<string, unknown>;
}

export function fetchDirectory(
  url: string,
  ca: string | undefined,
  timeoutMs = 30_000,
): Promise<AcmeDirectory> {
  const unreachable = (why: string) =>
    new NetworkError(
      `the ACME directory ${url} cannot be read: ${why}`,
      'check the URL, the network and (for a private CA) ca_bundle; nothing was changed',
    );
  return new Promise((resolveDir, reject) => {
    const send = url.startsWith('http:') ? httpRequest : request;
    const req = send(url, { ...(ca ? { ca } : {}), timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 1_000_000) body += d;
      });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(unreachable(`HTTP ${res.statusCode}`));
        try {
          const dir = JSON.parse(body) as AcmeDirectory;
          if (typeof dir.newOrder !== 'string') return reject(unreachable('not an ACME directory'));
          resolveDir(dir);
        } catch {
          reject(unreachable('not JSON'));
        }
      });
      res.on('error', (e) => reject(unreachable(e.message)));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(unreachable((e as NodeJS.ErrnoException).code ?? e.message)));
    req.end();
  });
}
