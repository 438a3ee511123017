/**
 * Per listener: is TLS set up the way its port needs it? 465 is implicit TLS (wrappermode,
 * RFC 8314), 587 is STARTTLS and should insist on it, 25 is the public MX where TLS must stay
 * opportunistic (RFC 3207 §4: a publicly referenced server must not require STARTTLS). Also:
 * a TLS level smtpd does not know, a TLS listener without a certificate, `smtp_*` (client)
 * parameters set with `-o` on an smtpd service. Pure.
 */
import type { ServedCertificates } from './certificates.js';
import type { FindingLevel } from './findings.js';
import type { MasterService, PostfixConfig } from './postconf.js';
import type { SmtpdService } from './services.js';

export interface ListenerFinding {
  id: string;
  level: FindingLevel;
  parameter: string;
  message: string;
  fix: string;
}

const SERVER_LEVELS = ['none', 'may', 'encrypt'];
const CLIENT_LEVELS = ['dane', 'dane-only', 'fingerprint', 'verify', 'secure'];

export function checkListener(s: SmtpdService, certs: ServedCertificates, tlsaPublished: boolean): ListenerFinding[] {
  const out: ListenerFinding[] = [];
  const levelParam = s.get('smtpd_tls_security_level').trim() ? 'smtpd_tls_security_level' : s.securityLevel === 'encrypt' ? 'smtpd_enforce_tls' : 'smtpd_use_tls';
  const where = (p: string): string => (s.origin(p) === 'service' ? `-o ${p} on ${s.label}` : `${p} in main.cf`);

  if (!SERVER_LEVELS.includes(s.securityLevel)) {
    const client = CLIENT_LEVELS.includes(s.securityLevel);
    out.push({
      id: 'server-level-invalid',
      level: 'error',
      parameter: 'smtpd_tls_security_level',
      message: `${where('smtpd_tls_security_level')} = ${s.securityLevel}: smtpd knows only none, may and encrypt${client ? `; "${s.securityLevel}" is a level of the SMTP client (outbound mail)` : ''}, so TLS on this listener is not what you intended.`,
      fix: `Set smtpd_tls_security_level = ${s.role === 'mx' ? 'may' : 'encrypt'}${client ? `, and smtp_tls_security_level = ${s.securityLevel} for outbound mail` : ''}.`,
    });
  }

  if (s.role === 'smtps' && !s.wrappermode) {
    out.push({
      id: 'smtps-no-wrappermode',
      level: 'error',
      parameter: 'smtpd_tls_wrappermode',
      message: `${s.label} listens on port 465, where clients start TLS at once (implicit TLS, RFC 8314), but smtpd_tls_wrappermode is not yes: smtpd greets in plaintext and every client's handshake fails.`,
      fix: `In master.cf, under ${s.master.name}: -o smtpd_tls_wrappermode=yes (and -o smtpd_sasl_auth_enable=yes for submission).`,
    });
  }
  if ((s.role === 'submission' || s.role === 'mx') && s.wrappermode) {
    out.push({
      id: s.role === 'mx' ? 'port25-wrappermode' : 'submission-wrappermode',
      level: 'error',
      parameter: 'smtpd_tls_wrappermode',
      message: `${s.label} runs with smtpd_tls_wrappermode = yes, but clients on port ${s.port} speak plaintext first and then STARTTLS: every connection fails.`,
      fix: `Remove -o smtpd_tls_wrappermode=yes from ${s.master.name} (implicit TLS belongs on 465 only).`,
    });
  }
  if (s.role === 'mx' && s.securityLevel === 'encrypt' && !s.wrappermode) {
    out.push({
      id: 'port25-encrypt',
      level: 'error',
      parameter: levelParam,
      message: `${where(levelParam)} makes TLS mandatory on port 25. Servers that cannot do TLS get "530 Must issue a STARTTLS command first" and the mail bounces; RFC 3207 §4 forbids this for a public MX.`,
      fix: `Use smtpd_tls_security_level = may on port 25; require TLS on submission (-o smtpd_tls_security_level=encrypt there).`,
    });
  }
  if (s.role === 'mx' && !s.tls) {
    out.push({
      id: 'port25-no-tls',
      level: tlsaPublished ? 'error' : 'warning',
      parameter: levelParam,
      message: `${s.label} offers no STARTTLS (smtpd_tls_security_level = ${s.securityLevel})${tlsaPublished ? ', yet TLSA records are published: DANE senders defer all mail to this host' : ': all mail arrives in plaintext'}.`,
      fix: 'Set smtpd_tls_security_level = may and smtpd_tls_chain_files = /path/to/privkey.pem /path/to/fullchain.pem.',
    });
  }
  if (s.role === 'submission' && s.securityLevel === 'may' && !s.wrappermode && !/^(yes|true|on|1)$/i.test(s.get('smtpd_tls_auth_only').trim())) {
    out.push({
      id: 'submission-not-encrypt',
      level: 'warning',
      parameter: 'smtpd_tls_security_level',
      message: `${s.label} accepts mail clients without TLS (level may, smtpd_tls_auth_only = no): passwords can travel in plaintext.`,
      fix: `In master.cf, under ${s.master.name}: -o smtpd_tls_security_level=encrypt (stricter protocol and cipher settings belong here too, via smtpd_tls_mandatory_protocols and smtpd_tls_mandatory_ciphers).`,
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

/** `-o smtp_*` on an smtpd service (and `-o smtpd_*` on an smtp client service): the program
 *  never reads them. */
export function checkMisplacedParameters(cfg: PostfixConfig, service: MasterService, label: string, side: 'server' | 'client'): ListenerFinding[] {
  const out: ListenerFinding[] = [];
  for (const [name, value] of service.overrides) {
    if (side === 'server' && /^(smtp|lmtp)_/.test(name)) {
      const meant = name.replace(/^(smtp|lmtp)_/, 'smtpd_');
      const known = cfg.effective.has(meant);
      out.push({
        id: 'client-parameter-on-server',
        level: 'warning',
        parameter: name,
        message: `-o ${name}=${value} on ${label}: ${name} is a parameter of the SMTP client (outbound mail); smtpd ignores it, so it changes nothing here.`,
        fix: known ? `Write -o ${meant}=${value}${meant === 'smtpd_tls_protocols' ? ' (or smtpd_tls_mandatory_protocols where TLS is mandatory)' : ''}.` : `Remove it, or set it on the smtp client service (smtp unix … smtp) instead.`,
      });
    } else if (side === 'client' && name.startsWith('smtpd_')) {
      out.push({
        id: 'server-parameter-on-client',
        level: 'warning',
        parameter: name,
        message: `-o ${name}=${value} on ${label}: ${name} is a parameter of the SMTP server; the smtp client ignores it.`,
        fix: `Write -o ${name.replace(/^smtpd_/, 'smtp_')}=${value} if the client was meant, or move it to the smtpd service.`,
      });
    }
  }
  return out;
}
