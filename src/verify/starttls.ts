/**
 * The plaintext part of a STARTTLS probe: a line reader over a TCP socket with a deadline, and
 * the SMTP/LMTP (RFC 3207, RFC 2033), IMAP (RFC 9051 §6.2.1) and POP3 (RFC 2595 §4) dialogues
 * up to the point where the TLS handshake starts on the same socket.
 */
import type { Socket } from 'node:net';
import { EXIT } from '../errors.js';
import type { TlsAlert } from './tls-alerts.js';

export type ProbeErrorCode =
  | 'refused'
  | 'timeout'
  | 'unreachable'
  | 'no-starttls'
  | 'starttls-rejected'
  | 'closed'
  | 'alert'
  | 'handshake'
  | 'protocol';

/** Internal: thrown inside a probe, turned into `{ ok: false, error }` at the top. Should one
 *  escape, it is a network failure (exit 3). */
export class ProbeFailure extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    readonly code: ProbeErrorCode,
    message: string,
    readonly alert?: TlsAlert,
  ) {
    super(message);
    this.name = 'ProbeFailure';
  }
}

const MAX_LINE = 16 * 1024;
const MAX_REPLY_LINES = 500;

/** A line as it is shown in messages: control characters escaped, at most 200 characters. */
export function showLine(line: string): string {
  const clean = line.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this escapes
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
  return JSON.stringify(clean.length > 200 ? `${clean.slice(0, 200)}…` : clean);
}

/** Node's socket error codes → probe error codes (connection phase and later). */
export function socketFailure(err: unknown, during: string, where: string): ProbeFailure {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const msg = (err as Error | undefined)?.message ?? String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return new ProbeFailure('refused', `connection refused by ${where}`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
    case 'EAFNOSUPPORT':
      return new ProbeFailure('unreachable', `${where} is unreachable (${code})`);
    case 'ECONNRESET':
    case 'EPIPE':
      return new ProbeFailure(
        'closed',
        `connection reset by ${where} during the ${during} (${code})`,
      );
    case 'ETIMEDOUT':
      return new ProbeFailure(
        'timeout',
        `connection to ${where} timed out during the ${during} (ETIMEDOUT)`,
      );
    default:
      return new ProbeFailure(
        'closed',
        `connection to ${where} failed during the ${during}: ${msg}`,
      );
  }
}

/**
 * Lines from a plaintext socket, CRLF (or bare LF) terminated. Replies split across TCP
 * segments and several replies in one segment are both handled: bytes are buffered and lines
 * handed out one at a time. Every read is bounded by the probe's deadline.
 */
export class PlainConnection {
  private buf: Buffer = Buffer.alloc(0);
  private waiter:
    | { resolve: (line: string) => void; reject: (e: ProbeFailure) => void; phase: string }
    | undefined;
  private eof = false;
  private error: unknown;
  private detached = false;

  constructor(
    private readonly socket: Socket,
    private readonly deadline: number,
    private readonly timeoutMs: number,
    /** "mx.example.org[192.0.2.1]:25", for messages. */
    readonly where: string,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.pump();
  };

  private readonly onEnd = (): void => {
    this.eof = true;
    this.pump();
  };

  private readonly onError = (err: unknown): void => {
    this.error ??= err;
    this.eof = true;
    this.pump();
  };

  private pump(): void {
    const w = this.waiter;
    if (!w) return;
    const nl = this.buf.indexOf(0x0a);
    if (nl >= 0) {
      const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl;
      const line = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(nl + 1);
      this.waiter = undefined;
      w.resolve(line);
      return;
    }
    if (this.buf.length > MAX_LINE) {
      this.waiter = undefined;
      w.reject(
        new ProbeFailure(
          'protocol',
          `line longer than ${MAX_LINE} bytes from ${this.where} during the ${w.phase}`,
        ),
      );
      return;
    }
    if (this.eof) {
      this.waiter = undefined;
      if (this.error) w.reject(socketFailure(this.error, w.phase, this.where));
      else {
        const partial =
          this.buf.length > 0
            ? ` (after a partial line ${showLine(this.buf.toString('latin1'))})`
            : '';
        w.reject(
          new ProbeFailure(
            'closed',
            `${this.where} closed the connection during the ${w.phase}${partial}`,
          ),
        );
      }
    }
  }

  /** The next line, without its line ending. `phase` names the wait in error messages. */
  readLine(phase: string): Promise<string> {
    if (this.detached)
      return Promise.reject(new ProbeFailure('protocol', 'internal: read after detach'));
    return new Promise<string>((resolve, reject) => {
      const waiter = {
        phase,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (e: ProbeFailure) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(
        () => {
          if (this.waiter !== waiter) return;
          this.waiter = undefined;
          reject(
            new ProbeFailure(
              'timeout',
              `timed out after ${this.timeoutMs} ms waiting for the ${phase} from ${this.where}`,
            ),
          );
        },
        Math.max(0, this.deadline - Date.now()),
      );
      this.waiter = waiter;
      this.pump();
    });
  }

  /** Send one command line (CRLF appended). */
  send(line: string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(`${line}\r\n`);
  }

  /** Stop reading; returns any bytes received but not consumed as lines. */
  detach(): Buffer {
    this.detached = true;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }
}

// ---------------------------------------------------------------------------------------------
// SMTP and LMTP

export interface SmtpReply {
  code: number;
  /** The reply lines as received (code and separator included). */
  lines: string[];
}

/** One (possibly multi-line, RFC 5321 §4.2.1) reply; all lines must carry the same code. */
export async function readSmtpReply(conn: PlainConnection, phase: string): Promise<SmtpReply> {
  const lines: string[] = [];
  let code: string | undefined;
  for (;;) {
    const line = await conn.readLine(phase);
    const m = /^([2-5][0-9][0-9])([ -]|$)/.exec(line);
    if (!m)
      throw new ProbeFailure(
        'protocol',
        `malformed ${phase} reply line from ${conn.where}: ${showLine(line)}`,
      );
    if (code !== undefined && m[1] !== code) {
      throw new ProbeFailure(
        'protocol',
        `inconsistent codes in the ${phase} reply from ${conn.where}: ${code} then ${showLine(line)}`,
      );
    }
    code = m[1]!;
    lines.push(line);
    if (m[2] !== '-') return { code: Number(code), lines };
    if (lines.length >= MAX_REPLY_LINES)
      throw new ProbeFailure(
        'protocol',
        `${phase} reply from ${conn.where} has more than ${MAX_REPLY_LINES} lines`,
      );
  }
}

const replyText = (r: SmtpReply): string => r.lines.join(' / ');

/** EHLO/LHLO keywords (upper case) from a 250 reply; the first line is the greeting. */
export function ehloKeywords(reply: SmtpReply): string[] {
  return reply.lines
    .slice(1)
    .map((l) => (l.slice(4).trim().split(/\s+/)[0] ?? '').toUpperCase())
    .filter(Boolean);
}

export interface StarttlsResult {
  /** The server's greeting (all lines, joined with "\n"). */
  banner: string;
}

export async function smtpStarttls(
  conn: PlainConnection,
  opts: { lmtp: boolean; ehloName: string },
): Promise<StarttlsResult> {
  const greeting = await readSmtpReply(conn, 'greeting');
  const banner = greeting.lines.join('\n');
  if (greeting.code !== 220) {
    conn.send('QUIT');
    throw new ProbeFailure(
      'protocol',
      `${conn.where} refused the session in its greeting: ${showLine(replyText(greeting))}`,
    );
  }
  const hello = opts.lmtp ? 'LHLO' : 'EHLO';
  conn.send(`${hello} ${opts.ehloName}`);
  const ehlo = await readSmtpReply(conn, `${hello} reply`);
  if (ehlo.code !== 250) {
    conn.send('QUIT');
    throw new ProbeFailure(
      'protocol',
      `${conn.where} rejected ${hello}: ${showLine(replyText(ehlo))}`,
    );
  }
  const keywords = ehloKeywords(ehlo);
  if (!keywords.includes('STARTTLS')) {
    conn.send('QUIT');
    throw new ProbeFailure(
      'no-starttls',
      `${conn.where} does not offer STARTTLS (${hello} reply lists: ${keywords.join(', ') || 'nothing'})`,
    );
  }
  conn.send('STARTTLS');
  const reply = await readSmtpReply(conn, 'STARTTLS reply');
  if (reply.code !== 220) {
    conn.send('QUIT');
    throw new ProbeFailure(
      'starttls-rejected',
      `${conn.where} answered STARTTLS with ${showLine(replyText(reply))}`,
    );
  }
  return { banner };
}

// ---------------------------------------------------------------------------------------------
// IMAP

function imapCapabilities(text: string): string[] {
  return text
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((c) => c.toUpperCase());
}

/** Untagged lines until the tagged one; returns [tagged status, tagged line, untagged lines]. */
async function imapCommand(
  conn: PlainConnection,
  tag: string,
  command: string,
  phase: string,
): Promise<{ status: string; line: string; untagged: string[] }> {
  conn.send(`${tag} ${command}`);
  const untagged: string[] = [];
  for (;;) {
    const line = await conn.readLine(phase);
    if (line.startsWith(`${tag} `)) {
      const status = (line.slice(tag.length + 1).split(/\s+/)[0] ?? '').toUpperCase();
      return { status, line, untagged };
    }
    if (line.startsWith('* ') || line.startsWith('+')) {
      untagged.push(line);
      if (untagged.length >= MAX_REPLY_LINES)
        throw new ProbeFailure(
          'protocol',
          `${phase} from ${conn.where} has more than ${MAX_REPLY_LINES} lines`,
        );
      continue;
    }
    throw new ProbeFailure(
      'protocol',
      `unexpected line from ${conn.where} during the ${phase}: ${showLine(line)}`,
    );
  }
}

export async function imapStarttls(conn: PlainConnection): Promise<StarttlsResult> {
  const greeting = await conn.readLine('greeting');
  const g = /^\* (OK|PREAUTH|BYE)\b\s*(.*)$/i.exec(greeting);
  if (!g)
    throw new ProbeFailure(
      'protocol',
      `not an IMAP greeting from ${conn.where}: ${showLine(greeting)}`,
    );
  const kind = g[1]!.toUpperCase();
  if (kind === 'BYE')
    throw new ProbeFailure('protocol', `${conn.where} refused the session: ${showLine(greeting)}`);
  if (kind === 'PREAUTH') {
    conn.send('a9 LOGOUT');
    throw new ProbeFailure(
      'protocol',
      `${conn.where} greeted with PREAUTH, after which STARTTLS is not allowed: ${showLine(greeting)}`,
    );
  }
  let caps: string[] | undefined;
  const inGreeting = /^\[CAPABILITY ([^\]]*)\]/i.exec(g[2] ?? '');
  if (inGreeting) caps = imapCapabilities(inGreeting[1]!);
  else {
    const r = await imapCommand(conn, 'a0', 'CAPABILITY', 'CAPABILITY reply');
    if (r.status === 'OK') {
      caps = r.untagged.flatMap((l) => {
        const m = /^\* CAPABILITY (.*)$/i.exec(l);
        return m ? imapCapabilities(m[1]!) : [];
      });
    }
  }
  if (caps && !caps.includes('STARTTLS')) {
    conn.send('a9 LOGOUT');
    throw new ProbeFailure(
      'no-starttls',
      `${conn.where} does not offer STARTTLS (CAPABILITY: ${caps.join(' ') || 'nothing'})`,
    );
  }
  const r = await imapCommand(conn, 'a1', 'STARTTLS', 'STARTTLS reply');
  if (r.status !== 'OK') {
    conn.send('a9 LOGOUT');
    throw new ProbeFailure(
      'starttls-rejected',
      `${conn.where} answered STARTTLS with ${showLine(r.line)}`,
    );
  }
  return { banner: greeting };
}

// ---------------------------------------------------------------------------------------------
// POP3

export async function pop3Starttls(conn: PlainConnection): Promise<StarttlsResult> {
  const greeting = await conn.readLine('greeting');
  if (!/^\+OK\b/.test(greeting)) {
    throw new ProbeFailure(
      'protocol',
      `${conn.where} did not greet with +OK: ${showLine(greeting)}`,
    );
  }
  conn.send('CAPA');
  const capa = await conn.readLine('CAPA reply');
  let caps: string[] | undefined;
  if (/^\+OK\b/.test(capa)) {
    caps = [];
    for (;;) {
      const line = await conn.readLine('CAPA reply');
      if (line === '.') break;
      caps.push((line.trim().split(/\s+/)[0] ?? '').toUpperCase());
      if (caps.length >= MAX_REPLY_LINES)
        throw new ProbeFailure(
          'protocol',
          `CAPA reply from ${conn.where} has more than ${MAX_REPLY_LINES} lines`,
        );
    }
  } else if (!/^-ERR\b/.test(capa)) {
    throw new ProbeFailure(
      'protocol',
      `malformed CAPA reply from ${conn.where}: ${showLine(capa)}`,
    );
  }
  if (caps && !caps.includes('STLS')) {
    conn.send('QUIT');
    throw new ProbeFailure(
      'no-starttls',
      `${conn.where} does not offer STLS (CAPA lists: ${caps.join(', ') || 'nothing'})`,
    );
  }
  conn.send('STLS');
  const reply = await conn.readLine('STLS reply');
  if (!/^\+OK\b/.test(reply)) {
    conn.send('QUIT');
    throw new ProbeFailure(
      /^-ERR\b/.test(reply) ? 'starttls-rejected' : 'protocol',
      `${conn.where} answered STLS with ${showLine(reply)}`,
    );
  }
  return { banner: greeting };
}

/** The command that ends the session politely once TLS is up (none for implicit TLS). */
export function quitCommand(
  protocol: 'smtp' | 'lmtp' | 'imap' | 'pop3' | 'tls',
): string | undefined {
  switch (protocol) {
    case 'smtp':
    case 'lmtp':
    case 'pop3':
      return 'QUIT';
    case 'imap':
      return 'a2 LOGOUT';
    default:
      return undefined;
  }
}
