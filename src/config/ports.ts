/** The ports of a service and the protocol each speaks: `ports: [25, 587, {port: 465,
 *  protocol: smtps}]`. A port's own protocol wins, then the service's `protocol:`, then the
 *  port's default (policy.ts). Pure; no config loader needed (check imports it cold). */
import { effectiveProtocol, type Protocol } from '../tlsa/policy.js';

/** A port as the configuration writes it. */
export type PortEntry = number | { port: number; protocol?: Protocol | undefined };

export interface PortProtocol {
  port: number;
  protocol: Protocol;
}

export interface PortsOf {
  ports: readonly PortEntry[];
  protocol?: Protocol | undefined;
}

export function portNumber(entry: PortEntry): number {
  return typeof entry === 'number' ? entry : entry.port;
}

/** Each port once (the first entry wins), with the protocol it speaks. */
export function servicePorts(svc: PortsOf): PortProtocol[] {
  const out: PortProtocol[] = [];
  for (const entry of svc.ports) {
    const port = portNumber(entry);
    if (out.some((p) => p.port === port)) continue;
    const own = typeof entry === 'number' ? undefined : entry.protocol;
    out.push({ port, protocol: effectiveProtocol(port, own ?? svc.protocol) });
  }
  return out;
}

const sameHost = (a: string, b: string): boolean =>
  a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

/** The protocol the configuration gives `host:port`, if a service lists that port of that host. */
export function configuredProtocol(
  services: Iterable<PortsOf & { host: string }>,
  host: string,
  port: number,
): Protocol | undefined {
  for (const svc of services) {
    if (!sameHost(svc.host, host)) continue;
    const found = servicePorts(svc).find((p) => p.port === port);
    if (found) return found.protocol;
  }
  return undefined;
}

/** Two services that give one port of one host different protocols: the listener speaks one
 *  of them, so the other's probes would fail. Returns the first clash. */
export function protocolClash(
  services: Record<string, PortsOf & { host: string }>,
): { service: string; index: number; message: string } | undefined {
  // The first service at each host and port: until a clash, every later one there agrees
  // with it, so it is the one a clash names (a Map keeps thousands of services linear).
  // By port, then host: no key string per service and port.
  const seen = new Map<number, Map<string, { service: string; protocol: Protocol }>>();
  for (const [service, svc] of Object.entries(services)) {
    const resolved = servicePorts(svc);
    const host = svc.host.replace(/\.$/, '').toLowerCase();
    for (let index = 0; index < svc.ports.length; index++) {
      const port = portNumber(svc.ports[index]!);
      const mine = resolved.find((p) => p.port === port)!;
      let atPort = seen.get(mine.port);
      if (!atPort) {
        atPort = new Map();
        seen.set(mine.port, atPort);
      }
      const other = atPort.get(host);
      if (other && other.protocol !== mine.protocol) {
        return {
          service,
          index,
          message: `port ${mine.port} of ${svc.host} speaks ${mine.protocol} here but ${other.protocol} in service "${other.service}"; one listener speaks one protocol`,
        };
      }
      if (!other) atPort.set(host, { service, protocol: mine.protocol });
    }
  }
  return undefined;
}
