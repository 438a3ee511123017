/** Asking the CA for a certificate's renewal window: `GET {renewalInfo}/{ariCertId}` (RFC 9773
 *  §4.2), unauthenticated, trusting the directory's ca_bundle as the directory fetch does. Plain
 *  http only on loopback (a test CA), as the configuration allows for the directory. */
import { request as httpRequest } from 'node:http';
import { request } from 'node:https';
import { type RenewalInfoResult, parseRenewalInfo, retryAfterSeconds } from './ari-info.js';

export interface RenewalInfoAnswer {
  result: RenewalInfoResult;
  /** Seconds the CA asks us to wait before the next poll (Retry-After), if it said. */
  retryAfterS?: number;
}

const LOOPBACK_HTTP = /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//;

export function renewalInfoUrl(renewalInfo: string, ariCertId: string): string {
  return `${renewalInfo.replace(/\/+$/, '')}/${ariCertId}`;
}

/** Never rejects: an unreachable or odd CA is an unusable answer (the lifetime rule decides). */
export function fetchRenewalInfo(
  renewalInfo: string,
  ariCertId: string,
  ca: string | undefined,
  now: Date,
  timeoutMs = 30_000,
): Promise<RenewalInfoAnswer> {
  const url = renewalInfoUrl(renewalInfo, ariCertId);
  const unusable = (why: string): RenewalInfoAnswer => ({ result: { ok: false, why } });
  if (!url.startsWith('https://') && !LOOPBACK_HTTP.test(url))
    return Promise.resolve(unusable(`renewalInfo ${url} is neither https nor loopback http`));
  return new Promise((done) => {
    const send = url.startsWith('http:') ? httpRequest : request;
    const req = send(url, { ...(ca ? { ca } : {}), timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 100_000) body += d;
      });
      res.on('end', () => {
        const retryAfterS = retryAfterSeconds(res.headers['retry-after'], now);
        done({
          result: parseRenewalInfo(res.statusCode ?? 0, body),
          ...(retryAfterS !== undefined ? { retryAfterS } : {}),
        });
      });
      res.on('error', (e) => done(unusable(e.message)));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e) => done(unusable((e as NodeJS.ErrnoException).code ?? e.message)));
    req.end();
  });
}
