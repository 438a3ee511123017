/**
 * The SMTP listeners of master.cf and what is effective on each: a parameter's value is the
 * service's `-o` override when there is one, else main.cf's (or Postfix's default). Which
 * role a listener has follows its port: 25 is the MX (opportunistic STARTTLS), 587 submission
 * (STARTTLS), 465 smtps (implicit TLS, RFC 8314).
 */
import { readFileSync } from 'node:fs';
import type { ConfigEdit } from './findings.js';
import type { MasterService, PostfixConfig } from './postconf.js';

export type Role = 'mx' | 'submission' | 'smtps' | 'other';

export interface SmtpdService {
  /** `smtp/25`, `submission/587`, `smtps/465`, or the master.cf name when it holds the port. */
  label: string;
  master: MasterService;
  /** Another service whose `-o` settings also apply (postscreen hands port 25 to `smtpd pass`). */
  handoff?: MasterService;
  port?: number;
  role: Role;
  /** Effective value: override, else main.cf/default. */
  get(param: string): string;
  /** Where a parameter's value comes from: this service's -o, main.cf, or Postfix's default. */
  origin(param: string): 'service' | 'main.cf' | 'default';
  /** `-o` names set on this service (and its hand-off). */
  overrideNames(): string[];
  /** The value of `smtpd_tls_security_level` after the legacy `smtpd_use_tls`/`smtpd_enforce_tls`. */
  securityLevel: string;
  wrappermode: boolean;
  /** Mandatory TLS: `encrypt` or wrappermode; then the `_mandatory_` protocol and cipher
   *  parameters apply instead of the opportunistic ones. */
  enforce: boolean;
  /** TLS is offered at all. */
  tls: boolean;
}

const WELL_KNOWN: Record<string, number> = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  submissions: 465,
  ssmtp: 465,
  urd: 465,
};

let servicesCache: Map<string, number> | undefined;

/** Port of a service name through /etc/services (tcp), with the well-known SMTP names built in. */
export function servicePort(name: string, servicesFile = '/etc/services'): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const known = WELL_KNOWN[name];
  if (known) return known;
  if (!servicesCache) {
    servicesCache = new Map();
    try {
      for (const line of readFileSync(servicesFile, 'utf8').split('\n')) {
        const m = /^([^\s#]+)\s+(\d+)\/tcp\b([^#]*)/.exec(line);
        if (!m) continue;
        for (const n of [m[1]!, ...m[3]!.trim().split(/\s+/).filter(Boolean)])
          if (!servicesCache.has(n)) servicesCache.set(n, Number(m[2]));
      }
    } catch {
      /* no /etc/services: only the built-in names */
    }
  }
  return servicesCache.get(name);
}

/** `smtp` → 25, `127.0.0.1:2525` → 2525, `[::1]:submission` → 587. */
export function portOf(serviceName: string): number | undefined {
  const i = serviceName.lastIndexOf(':');
  return servicePort(i >= 0 ? serviceName.slice(i + 1) : serviceName);
}

export function roleOf(port: number | undefined): Role {
  switch (port) {
    case 25:
      return 'mx';
    case 587:
      return 'submission';
    case 465:
      return 'smtps';
    default:
      return 'other';
  }
}

export function serviceLabel(name: string, port: number | undefined): string {
  if (name.includes(':') || /^\d+$/.test(name) || port === undefined) return name;
  return `${name}/${port}`;
}

const yes = (v: string | undefined): boolean => /^(yes|true|on|1)$/i.test((v ?? '').trim());

export function effectiveView(
  cfg: PostfixConfig,
  master: MasterService,
  handoff?: MasterService,
): SmtpdService {
  const port = portOf(master.name);
  const get = (p: string): string =>
    handoff?.overrides.get(p) ?? master.overrides.get(p) ?? cfg.effective.get(p) ?? '';
  const origin = (p: string): 'service' | 'main.cf' | 'default' =>
    handoff?.overrides.has(p) || master.overrides.has(p)
      ? 'service'
      : cfg.explicit.has(p)
        ? 'main.cf'
        : 'default';
  let securityLevel = get('smtpd_tls_security_level').trim().toLowerCase();
  if (!securityLevel)
    securityLevel = yes(get('smtpd_enforce_tls'))
      ? 'encrypt'
      : yes(get('smtpd_use_tls'))
        ? 'may'
        : 'none';
  const wrappermode = yes(get('smtpd_tls_wrappermode'));
  return {
    label: serviceLabel(master.name, port),
    master,
    ...(handoff ? { handoff } : {}),
    ...(port !== undefined ? { port } : {}),
    role: roleOf(port),
    get,
    origin,
    overrideNames: () => [
      ...new Set([...master.overrides.keys(), ...(handoff?.overrides.keys() ?? [])]),
    ],
    securityLevel,
    wrappermode,
    enforce: wrappermode || securityLevel === 'encrypt',
    tls: wrappermode || securityLevel !== 'none',
  };
}

/** Every inet listener that runs smtpd (directly, or postscreen handing off to `smtpd pass`). */
export function smtpdServices(cfg: PostfixConfig): SmtpdService[] {
  const passSmtpd = cfg.services.find((s) => s.type === 'pass' && s.command === 'smtpd');
  const out: SmtpdService[] = [];
  for (const s of cfg.services) {
    if (s.type !== 'inet') continue;
    if (s.command === 'smtpd') out.push(effectiveView(cfg, s));
    else if (s.command === 'postscreen' && passSmtpd) out.push(effectiveView(cfg, s, passSmtpd));
  }
  return out;
}

/** The SMTP client services (`smtp unix smtp`, `relay unix smtp`, …). */
export function smtpClientServices(cfg: PostfixConfig): MasterService[] {
  return cfg.services.filter((s) => s.type === 'unix' && s.command === 'smtp');
}

/** `name/type` of the master.cf service whose `-o` holds `param` on this listener; for a new
 *  setting the service that runs smtpd (the `smtpd pass` hand-off behind postscreen). */
export function overrideService(s: SmtpdService, param: string): string {
  const m = s.handoff?.overrides.has(param)
    ? s.handoff
    : s.master.overrides.has(param)
      ? s.master
      : (s.handoff ?? s.master);
  return `${m.name}/${m.type}`;
}

/** An edit of `param` where its value on this listener comes from: the service's `-o`, else
 *  main.cf. No value: delete it. */
export function editAtOrigin(s: SmtpdService, param: string, value?: string): ConfigEdit {
  return {
    ...(s.origin(param) === 'service' ? { service: overrideService(s, param) } : {}),
    parameter: param,
    ...(value !== undefined ? { value } : {}),
  };
}

/** An edit of `param` on this listener alone (`-o` on its service), leaving other services be. */
export function editOnService(s: SmtpdService, param: string, value?: string): ConfigEdit {
  return {
    service: overrideService(s, param),
    parameter: param,
    ...(value !== undefined ? { value } : {}),
  };
}
