/** PEM splitting with line numbers, so that every error can point at file:line. Pure. */
import { InputError } from '../errors.js';

export interface PemBlock {
  label: string;
  der: Buffer;
  /** 1-based line of the BEGIN marker. */
  line: number;
  text: string;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----\s*$/;
const END = /^-----END ([A-Z0-9 ]+)-----\s*$/;

export function splitPem(text: string, file: string): PemBlock[] {
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  let open: { label: string; line: number; body: string[] } | undefined;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const lineNo = i + 1;
    const b = BEGIN.exec(line);
    if (b) {
      if (open)
        throw new InputError(
          `PEM block "${open.label}" opened at line ${open.line} has no END line before the next BEGIN (truncated PEM)`,
          file,
          open.line,
        );
      open = { label: b[1]!, line: lineNo, body: [] };
      return;
    }
    const e = END.exec(line);
    if (e) {
      if (!open)
        throw new InputError(`"-----END ${e[1]}-----" without a matching BEGIN`, file, lineNo);
      if (e[1] !== open.label)
        throw new InputError(
          `PEM block "${open.label}" opened at line ${open.line} is closed as "${e[1]}"`,
          file,
          lineNo,
        );
      const body = open.body.join('');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0 || body.length === 0) {
        throw new InputError(`PEM block "${open.label}" has broken base64 data`, file, open.line);
      }
      const text = [
        `-----BEGIN ${open.label}-----`,
        ...open.body,
        `-----END ${open.label}-----`,
        '',
      ].join('\n');
      blocks.push({ label: open.label, der: Buffer.from(body, 'base64'), line: open.line, text });
      open = undefined;
      return;
    }
    if (open) {
      if (line.includes(':')) return; // RFC 1421 headers (Proc-Type, DEK-Info) of encrypted keys
      open.body.push(line);
    }
  });
  if (open)
    throw new InputError(
      `PEM block "${open.label}" opened at line ${open.line} never ends (truncated PEM)`,
      file,
      open.line,
    );
  return blocks;
}
