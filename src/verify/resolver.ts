/** Which validating resolver to ask: "system" (the first nameserver of /etc/resolv.conf),
 *  "IP", "IP:PORT" or "[IPv6]:PORT". */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { InputError, NetworkError } from '../errors.js';
import type { DnsServer } from './dns.js';

export function parseServer(text: string, defaultPort = 53): DnsServer | undefined {
  const t = text.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6)
    return isIP(v6[1]!) === 6 ? { host: v6[1]!, port: Number(v6[2] ?? defaultPort) } : undefined;
  if (isIP(t)) return { host: t, port: defaultPort };
  const m = /^([^:]+):(\d+)$/.exec(t);
  if (m && isIP(m[1]!) === 4) return { host: m[1]!, port: Number(m[2]) };
  return undefined;
}

export function systemResolver(resolvConf = '/etc/resolv.conf'): DnsServer | undefined {
  let text = '';
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      const s = parseServer(m[1]!.replace(/%.*$/, ''));
      if (s) return s;
    }
  }
  return undefined;
}

/** Resolve the configured resolver or say why it cannot be used: a setting that is not an
 *  address is bad input (exit 2); "system" on a machine without a usable nameserver line is
 *  the network's configuration (exit 3). */
export function resolverFrom(setting: string): DnsServer {
  if (setting === 'system') {
    const s = systemResolver();
    if (!s)
      throw new NetworkError(
        'no usable nameserver in /etc/resolv.conf',
        'set verify.resolver to a validating resolver, e.g. "127.0.0.1" or "[::1]:53"',
      );
    return s;
  }
  const s = parseServer(setting);
  if (!s) throw new InputError(`resolver "${setting}" is not "IP", "IP:PORT" or "[IPv6]:PORT"`);
  return s;
}
