/**
 * Per listener: is TLS set up the way its port needs it? 465 is implicit TLS (wrappermode,
 * RFC 8314), 587 is STARTTLS and should insist on it, 25 is the public MX where TLS must stay
 * opportunistic (RFC 3207 §4: a publicly referenced server must not require STARTTLS). Also:
 * a TLS level smtpd does not know, a TLS listener without a certificate, `smtp_*` (client)
 * parameters set with `-o` on an smtpd service. Pure.
 */
import type { ServedCertificates } from './certificates.js';
import type { ConfigEdit, FindingWithoutService } from './findings.js';
import type { MasterService, PostfixConfig } from './postconf.js';
import { recommendedProtocols } from './protocols.js';
import { editAtOrigin, editOnService, type SmtpdService } from './services.js';

export type ListenerFinding = FindingWithoutService;

const SERVER_LEVELS = ['none', 'may', 'encrypt'];
const CLIENT_LEVELS = ['dane', 'dane-only', 'fingerprint', 'verify', 'secure'];

export function checkListener(
  s: SmtpdService,
  certs: ServedCertificates,
  tlsaPublished: boolean,
): ListenerFinding[] {
  const out: ListenerFinding[] = [];
  const levelParam = s.get('smtpd_tls_security_level').trim()
    ? 'smtpd_tls_security_level'
    : s.securityLevel === 'encrypt'
      ? 'smtpd_enforce_tls'
      : 'smtpd_use_tls';
  const where = (p: string): string =>
    s.origin(p) === 'service' ? `-o ${p} on ${s.label}` : `${p} in main.cf`;

  if (!SERVER_LEVELS.includes(s.securityLevel)) {
    const client = CLIENT_LEVELS.includes(s.securityLevel);
    out.push({
      id: 'server-level-invalid',
      level: 'error',
      parameter: 'smtpd_tls_security_level',
      message: `${where('smtpd_tls_security_level')} = ${s.securityLevel}: smtpd knows only none, may and encrypt${client ? `; "${s.securityLevel}" is a level of the SMTP client (outbound mail)` : ''}, so TLS on this listener is not what you intended.`,
      fix: `Set smtpd_tls_security_level = ${s.role === 'mx' ? 'may' : 'encrypt'}${client ? `, and smtp_tls_security_level = ${s.securityLevel} for outbound mail` : ''}.`,
      edits: [editAtOrigin(s, 'smtpd_tls_security_level', s.role === 'mx' ? 'may' : 'encrypt')],
    });
  }

  if (s.role === 'smtps' && !s.wrappermode) {
    out.push({
      id: 'smtps-no-wrappermode',
      level: 'error',
      parameter: 'smtpd_tls_wrappermode',
      message: `${s.label} listens on port 465, where clients start TLS at once (implicit TLS, RFC 8314), but smtpd_tls_wrappermode is not yes: smtpd greets in plaintext and every client's handshake fails.`,
      fix: `In master.cf, under ${s.master.name}: -o smtpd_tls_wrappermode=yes (and -o smtpd_sasl_auth_enable=yes for submission).`,
      edits: [editOnService(s, 'smtpd_tls_wrappermode', 'yes')],
    });
  }
  if ((s.role === 'submission' || s.role === 'mx') && s.wrappermode) {
    out.push({
      id: s.role === 'mx' ? 'port25-wrappermode' : 'submission-wrappermode',
      level: 'error',
      parameter: 'smtpd_tls_wrappermode',
      message: `${s.label} runs with smtpd_tls_wrappermode = yes, but clients on port ${s.port} speak plaintext first and then STARTTLS: every connection fails.`,
      fix: `Remove -o smtpd_tls_wrappermode=yes from ${s.master.name} (implicit TLS belongs on 465 only).`,
      edits: [
        s.origin('smtpd_tls_wrappermode') === 'service'
          ? editAtOrigin(s, 'smtpd_tls_wrappermode')
          : editOnService(s, 'smtpd_tls_wrappermode', 'no'),
      ],
    });
  }
  if (s.role === 'mx' && s.securityLevel === 'encrypt' && !s.wrappermode) {
    out.push({
      id: 'port25-encrypt',
      level: 'error',
      parameter: levelParam,
      message: `${where(levelParam)} makes TLS mandatory on port 25. Servers that cannot do TLS get "530 Must issue a STARTTLS command first" and the mail bounces; RFC 3207 §4 forbids this for a public MX.`,
      fix: `In master.cf, on ${s.label}: -o smtpd_tls_security_level=may (TLS stays mandatory where main.cf says so); require TLS on submission (-o smtpd_tls_security_level=encrypt there).`,
      edits: [editOnService(s, 'smtpd_tls_security_level', 'may')],
    });
  }
  if (s.role === 'mx' && !s.tls) {
    out.push({
      id: 'port25-no-tls',
      level: tlsaPublished ? 'error' : 'warning',
      parameter: levelParam,
      message: `${s.label} offers no STARTTLS (smtpd_tls_security_level = ${s.securityLevel})${tlsaPublished ? ', yet TLSA records are published: DANE senders defer all mail to this host' : ': all mail arrives in plaintext'}.`,
      fix: 'Set smtpd_tls_security_level = may and smtpd_tls_chain_files = /path/to/privkey.pem /path/to/fullchain.pem.',
      // Only with a certificate configured: TLS without one is disabled again (no-certificate).
      ...(certs.chains.length && !certs.problems.length
        ? { edits: [editOnService(s, 'smtpd_tls_security_level', 'may')] }
        : {}),
    });
  }
  if (
    s.role === 'submission' &&
    s.securityLevel === 'may' &&
    !s.wrappermode &&
    !/^(yes|true|on|1)$/i.test(s.get('smtpd_tls_auth_only').trim())
  ) {
    out.push({
      id: 'submission-not-encrypt',
      level: 'warning',
      parameter: 'smtpd_tls_security_level',
      message: `${s.label} accepts mail clients without TLS (level may, smtpd_tls_auth_only = no): passwords can travel in plaintext.`,
      fix: `In master.cf, under ${s.master.name}: -o smtpd_tls_security_level=encrypt (stricter protocol and cipher settings belong here too, via smtpd_tls_mandatory_protocols and smtpd_tls_mandatory_ciphers).`,
      edits: [editOnService(s, 'smtpd_tls_security_level', 'encrypt')],
    });
  }

  if (s.tls) {
    if (certs.parameter === 'none') {
      out.push({
        id: 'no-certificate',
        level: 'error',
        parameter: 'smtpd_tls_chain_files',
        message: `TLS is ${s.enforce ? 'required' : 'offered'} on ${s.label}, but neither smtpd_tls_chain_files nor smtpd_tls_cert_file is set: smtpd disables TLS${s.enforce ? ' and clients cannot connect' : ''}.`,
        fix: 'Set smtpd_tls_chain_files = /etc/letsencrypt/live/NAME/privkey.pem /etc/letsencrypt/live/NAME/fullchain.pem.',
      });
    }
    for (const p of certs.problems) {
      out.push({
        id: 'cert-file-unreadable',
        level: 'error',
        parameter: p.parameter,
        message: `${p.message}: smtpd cannot load its certificate and disables TLS on ${s.label}.`,
        fix: `Point ${p.parameter} at readable PEM files (private key, then leaf and intermediates).`,
      });
    }
  }
  return out;
}

/** The server parameter a client one was probably meant as, on this service: the protocol and
 *  cipher lists have an opportunistic and a mandatory variant, and only one applies here. */
function meantServerParameter(name: string, s: SmtpdService | undefined): string {
  const m = /^(?:smtp|lmtp)_tls_(?:mandatory_)?(protocols|ciphers|exclude_ciphers)$/.exec(name);
  if (m && s) {
    if (m[1] === 'exclude_ciphers')
      return s.enforce && name.includes('mandatory')
        ? 'smtpd_tls_mandatory_exclude_ciphers'
        : 'smtpd_tls_exclude_ciphers';
    return `smtpd_tls_${s.enforce ? 'mandatory_' : ''}${m[1]}`;
  }
  return name.replace(/^(smtp|lmtp)_/, 'smtpd_');
}

/** `-o smtp_*` on an smtpd service (and `-o smtpd_*` on an smtp client service): the program
 *  never reads them. The fix deletes the line; it never copies its value into a server
 *  parameter (a client's protocol list on a server is how TLS-1.0-only listeners happen).
 *  `smtpd`: the listener's effective view, to name the parameter that applies there. */
export function checkMisplacedParameters(
  cfg: PostfixConfig,
  service: MasterService,
  label: string,
  side: 'server' | 'client',
  smtpd?: SmtpdService,
): ListenerFinding[] {
  const out: ListenerFinding[] = [];
  const key = `${service.name}/${service.type}`;
  for (const [name, value] of service.overrides) {
    if (side === 'server' && /^(smtp|lmtp)_/.test(name)) {
      const meant = meantServerParameter(name, smtpd);
      const known = cfg.effective.has(meant);
      const edits: ConfigEdit[] = [{ service: key, parameter: name }];
      let fix: string;
      if (/_protocols$/.test(meant) && smtpd) {
        const safe = recommendedProtocols(cfg.version);
        const mxDefaults = smtpd.role === 'mx' && !smtpd.enforce;
        // Add the server's list only where the service does not set one already.
        if (!mxDefaults && smtpd.origin(meant) !== 'service')
          edits.push(editOnService(smtpd, meant, safe));
        fix = mxDefaults
          ? `Delete -o ${name}: port 25 keeps Postfix's default protocols (TLS 1.2 and 1.3 must stay on for senders).`
          : `Delete -o ${name}. To restrict protocols on ${label}, write -o ${meant}=${safe}: ${smtpd.enforce ? 'TLS is mandatory here, so the mandatory list applies' : 'TLS is opportunistic here, so smtpd_tls_protocols applies'} — never a list without TLS 1.2 and 1.3.`;
      } else {
        fix = known
          ? `Delete -o ${name}. If the server was meant, the parameter that applies on ${label} is ${meant}.`
          : 'Delete it, or set it on the smtp client service (smtp unix … smtp) instead.';
      }
      out.push({
        id: 'client-parameter-on-server',
        level: 'warning',
        parameter: name,
        message: `-o ${name}=${value} on ${label}: ${name} is a parameter of the SMTP client (outbound mail); smtpd ignores it, so it changes nothing here.`,
        fix,
        edits,
      });
    } else if (side === 'client' && name.startsWith('smtpd_')) {
      out.push({
        id: 'server-parameter-on-client',
        level: 'warning',
        parameter: name,
        message: `-o ${name}=${value} on ${label}: ${name} is a parameter of the SMTP server; the smtp client ignores it.`,
        fix: `Delete it. If the client was meant, the parameter is ${name.replace(/^smtpd_/, 'smtp_')}; otherwise move it to the smtpd service.`,
        edits: [{ service: key, parameter: name }],
      });
    }
  }
  return out;
}
