/** The doctor's report for humans: per service what is effective, then its findings
 *  (level, id, parameter, why, fix); outbound and main.cf-wide findings after. Pure. */
import type { DoctorReport, ServiceReport } from './doctor.js';
import { editCommand, type Finding } from './findings.js';

const TAG: Record<Finding['level'], string> = { error: 'ERROR', warning: 'WARN ', info: 'INFO ' };

function wrap(text: string, indent: string, width = 100): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width - indent.length) {
      lines.push(indent + cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(indent + cur);
  return lines;
}

function renderFinding(f: Finding, configDir?: string): string[] {
  return [
    `  ${TAG[f.level]} ${f.id}  [${f.parameter}]`,
    ...wrap(`why: ${f.message}`, '         '),
    ...wrap(`fix: ${f.fix}`, '         '),
    // Commands, not prose: never wrapped.
    ...(f.edits ?? []).map((e) => `         run: ${editCommand(e, configDir)}`),
  ];
}

function roleText(s: ServiceReport): string {
  switch (s.role) {
    case 'mx':
      return 'public MX, opportunistic STARTTLS';
    case 'submission':
      return 'submission, STARTTLS';
    case 'smtps':
      return 'submission, implicit TLS';
    default:
      return s.tls.wrappermode ? 'implicit TLS' : 'STARTTLS';
  }
}

function renderService(s: ServiceReport, findings: Finding[], configDir?: string): string[] {
  const lines = [`${s.service}  (${s.master}: ${s.command}; ${roleText(s)})`];
  lines.push(
    `  TLS:       smtpd_tls_security_level = ${s.tls.securityLevel}${s.tls.wrappermode ? ', smtpd_tls_wrappermode = yes' : ''} → ${s.tls.mandatory ? 'mandatory' : s.tls.securityLevel === 'none' && !s.tls.wrappermode ? 'off' : 'opportunistic'}`,
  );
  if (s.protocols)
    lines.push(
      `  protocols: ${s.protocols.parameter} = ${s.protocols.value || '(empty)'} → ${s.protocols.enabled.join(', ') || 'none'}`,
    );
  if (s.ciphers) {
    const c = s.ciphers;
    lines.push(
      `  ciphers:   ${c.parameter} = ${c.grade}${c.exclusions.length ? `, excluding ${c.exclusions.join(', ')}` : ''} → ${c.invalid ? 'invalid' : `${c.tls12Suites} TLS ≤1.2 suites; common sender suites: ${c.commonSuites.join(', ') || 'none'}`}`,
    );
  }
  if (s.certificates.chains.length)
    for (const ch of s.certificates.chains) lines.push(`  serves:    ${ch}`);
  else if (s.tls.securityLevel !== 'none' || s.tls.wrappermode)
    lines.push(`  serves:    no certificate (${s.certificates.parameter})`);
  if (s.tlsa) {
    const t = s.tlsa;
    lines.push(
      `  TLSA:      ${t.owner}${t.cnameChain ? ` (CNAME → ${t.cnameChain.slice(1).join(' → ')})` : ''} (${t.source}${t.status ? `, ${t.status}` : ''}): ${t.records.length ? t.records.map((r) => `${r.slice(0, 22)}…`).join(', ') : 'none'}`,
    );
    for (const c of t.chains)
      lines.push(
        `             ${c.keyType}: ${c.verified ? `matched by ${c.matched}` : 'NOT matched'}`,
      );
  }
  if (findings.length) for (const f of findings) lines.push(...renderFinding(f, configDir));
  else lines.push('  no findings');
  return lines;
}

export function renderReport(r: DoctorReport): string {
  const out: string[] = [`Postfix ${r.postfix.version}, ${r.postfix.configDir}`, ''];
  const dir = r.postfix.configDir === '/etc/postfix' ? undefined : r.postfix.configDir;
  const byService = (label: string): Finding[] => r.findings.filter((f) => f.service === label);
  for (const s of r.services) out.push(...renderService(s, byService(s.service), dir), '');
  const o = r.outbound;
  out.push(`smtp client  (outbound, ${o.service})`);
  out.push(
    `  DANE:      smtp_tls_security_level = ${o.securityLevel}, smtp_dns_support_level = ${o.dnsSupportLevel || '(empty)'}${o.relayhost ? `, relayhost = ${o.relayhost}` : ''}`,
  );
  if (o.policyEntries.length)
    out.push(
      `  policy:    ${o.policyEntries
        .map(
          (e) =>
            `${e.key} ${e.level}${Object.entries(e.attributes)
              .map(([k, v]) => ` ${k}=${v}`)
              .join('')}`,
        )
        .join('; ')}`,
    );
  if (o.resolver) out.push(`  resolver:  ${o.resolver.server}: ${o.resolver.status}`);
  const outFindings = byService('smtp client');
  if (outFindings.length) for (const f of outFindings) out.push(...renderFinding(f, dir));
  else out.push('  no findings');
  const known = new Set([...r.services.map((s) => s.service), 'smtp client']);
  const rest = r.findings.filter((f) => !known.has(f.service));
  if (rest.length) {
    out.push('', 'main.cf');
    for (const f of rest) out.push(...renderFinding(f, dir));
  }
  if (r.skipped.length) {
    out.push('', 'not checked:');
    for (const s of r.skipped) out.push(...wrap(`${s.check}: ${s.reason}`, '  '));
  }
  const count = (l: Finding['level']): number => r.findings.filter((f) => f.level === l).length;
  out.push(
    '',
    `${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} note(s)${r.ok ? '' : ' — exit 1'}`,
  );
  return `${out.join('\n')}\n`;
}
