/** The JSON-over-HTTP exchange the REST providers share (PowerDNS, deSEC): a bounded request,
 *  network failures as Transient (worth another try), the body read as text and as JSON.
 *  node:http(s) rather than fetch: PowerDNS closes every connection, and undici's set-up per
 *  connection cost more CPU than the rest of a 10k-name no-op run's reads. */
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { finished, type Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { EXIT } from '../src/errors.js';
import { withRetry } from '../src/util/retry.js';

/** An answer worth asking again: 429, 5xx, a network error. Exit 3 should it escape. */
export class Transient extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** The answer's headers, looked up by name as fetch's Headers are (any case; repeated ones
 *  joined with ", "). */
export interface AnswerHeaders {
  get(name: string): string | null;
}

export interface HttpAnswer {
  status: number;
  /** The server's reason phrase ("Not Found"), or "" without one. */
  statusText: string;
  /** 2xx. */
  ok: boolean;
  headers: AnswerHeaders;
}

export interface JsonAnswer {
  res: HttpAnswer;
  text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  json: unknown;
}

/** Larger answers are refused, not read: no zone or page of RRsets comes near it. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

// Keep-alive for servers that allow it (deSEC); PowerDNS closes each connection anyway. The
// agent unrefs idle sockets, so they never hold a finished process open.
const agents = {
  'http:': new HttpAgent({ keepAlive: true }),
  'https:': new HttpsAgent({ keepAlive: true }),
};

// One decoder for every answer: decode() without `stream` keeps no state between calls.
const utf8 = new TextDecoder();

export async function exchangeJson(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: unknown; timeoutMs: number },
  /** For messages: "the deSEC API at https://desec.io (reading …)". */
  what: string,
  /** A permanent failure: a redirect, an oversized answer. */
  fail: (message: string) => Error,
): Promise<JsonAnswer> {
  const body = init.body === undefined ? undefined : JSON.stringify(init.body);
  const answer = await exchange(
    new URL(url),
    init.method,
    {
      ...init.headers,
      Accept: 'application/json',
      'Accept-Encoding': 'gzip, deflate',
      'User-Agent': 'node',
      ...(body === undefined
        ? {}
        : {
            'Content-Type': 'application/json',
            'Content-Length': String(Buffer.byteLength(body)),
          }),
    },
    body,
    init.timeoutMs,
    what,
    fail,
  );
  const text = utf8.decode(answer.bytes);
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { res: answer.res, text, json };
}

/** One request and its whole answer, within `timeoutMs` from start to the body's last byte. */
function exchange(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  timeoutMs: number,
  what: string,
  fail: (message: string) => Error,
): Promise<{ res: HttpAnswer; bytes: Buffer }> {
  const https = url.protocol === 'https:';
  if (!https && url.protocol !== 'http:') throw fail(`${what}: not an http(s) URL: ${url.origin}`);
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (e: Error | undefined, value?: { res: HttpAnswer; bytes: Buffer }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (e) {
        req.destroy();
        reject(e);
      } else resolve(value!);
    };
    const unreachable = (why: string) => new Transient(`cannot reach ${what}: ${why}`);
    const timer = setTimeout(
      () => finish(unreachable(`no answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    const options = { method, headers, agent: agents[https ? 'https:' : 'http:'] };
    const req = (https ? httpsRequest : httpRequest)(url, options, (res) => {
      const status = res.statusCode ?? 0;
      // Never followed: the credentials travel in headers, which a redirect would carry to any
      // host. The address it points to is named so that the URL can be set to it.
      if (status >= 300 && status < 400) {
        const to = res.headers.location;
        let where = '';
        try {
          if (to) {
            const u = new URL(to, url);
            where = ` to ${u.origin}${u.pathname}`;
          }
        } catch {
          where = '';
        }
        finish(
          fail(
            `${what}: HTTP ${status}, a redirect${where}; not followed (the request carries credentials): set the API URL to where the server points`,
          ),
        );
        return;
      }
      readBody(res, what, fail).then(
        (bytes) => finish(undefined, { res: answerOf(res), bytes }),
        (e: Error) => finish(e),
      );
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish(unreachable(e.code ?? e.message)));
    req.end(body);
  });
}

function answerOf(res: IncomingMessage): HttpAnswer {
  const status = res.statusCode ?? 0;
  const headers = res.headers;
  return {
    status,
    statusText: res.statusMessage ?? '',
    ok: status >= 200 && status < 300,
    headers: {
      get(name) {
        const v = headers[name.toLowerCase()];
        if (v === undefined) return null;
        return Array.isArray(v) ? v.join(', ') : v;
      },
    },
  };
}

/** The body, decompressed as fetch would (gzip, deflate), refused beyond MAX_ANSWER_BYTES.
 *  Read by 'data' events rather than an async iterator: a fleet's run reads a thousand
 *  answers, and the iterator's promise per chunk cost more than the rest of the read. */
function readBody(
  res: IncomingMessage,
  what: string,
  fail: (message: string) => Error,
): Promise<Buffer> {
  const encoding = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
  let stream: Readable = res;
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = res.pipe(createGunzip());
  else if (encoding === 'deflate') stream = res.pipe(createInflate());
  // pipe() does not pass an answer cut short on to the decompressor, which would wait forever.
  if (stream !== res) res.on('error', (e) => stream.destroy(e));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size <= MAX_ANSWER_BYTES) {
        chunks.push(chunk);
        return;
      }
      refused = true;
      res.destroy();
      stream.destroy();
      reject(fail(`${what}: the answer is larger than ${MAX_ANSWER_BYTES >> 20} MiB; not read`));
    });
    // The same end, error and premature-close rules an async iterator over the stream has.
    finished(stream, (e) => {
      if (refused) return;
      if (e) {
        // Cut off mid-answer (ECONNRESET), or a body that does not decompress.
        const err = e as NodeJS.ErrnoException;
        reject(new Transient(`cannot reach ${what}: ${err.code ?? err.message}`));
        return;
      }
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
  });
}

/** `exchange` with bounded retries of Transient failures (backoff, or the server's
 *  Retry-After); the last one becomes `fail("… (gave up after N attempts)")`. */
export function retryTransient<T>(
  exchange: () => Promise<T>,
  opts: { attempts: number; baseDelayMs: number; maxDelayMs: number },
  fail: (message: string) => Error,
): Promise<T> {
  return withRetry(exchange, {
    ...opts,
    isRetryable: (e) => e instanceof Transient,
    retryAfterMs: (e) => (e instanceof Transient ? e.retryAfterMs : undefined),
  }).catch((e: unknown) => {
    if (e instanceof Transient)
      throw fail(`${e.message} (gave up after ${opts.attempts} attempts)`);
    throw e;
  });
}
