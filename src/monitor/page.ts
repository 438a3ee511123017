/** The status page: one server-rendered HTML document, inline CSS, no script and nothing
 *  fetched from elsewhere. Every text from the configuration, the state or a certificate is
 *  escaped. Pure: model in, HTML out. */
import type { MonitorModel, RecordRow, ServiceModel } from './model.js';

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** `html\`<p>${x}</p>\`` escapes every interpolation unless it is already rendered Html. */
class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}
type Part = Html | string | number | undefined | null | false | Html[];
function html(strings: TemplateStringsArray, ...parts: Part[]): Html {
  const one = (p: Part): string =>
    p === undefined || p === null || p === false
      ? ''
      : p instanceof Html
        ? p.text
        : Array.isArray(p)
          ? p.map(one).join('')
          : escapeHtml(String(p));
  return new Html(
    strings.reduce((acc, s, i) => acc + s + (i < parts.length ? one(parts[i]) : ''), ''),
  );
}

/** "1h 5m", "40s": short enough for a table cell. */
export function span(seconds: number): string {
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [d && `${d}d`, h && `${h}h`, m && `${m}m`, s && `${s}s`].filter(Boolean);
  return parts.slice(0, 2).join(' ') || '0s';
}

const time = (isoTime: string): Html =>
  html`<time datetime="${isoTime}">${isoTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>`;

function relative(isoTime: string, now: number): string {
  const d = (Date.parse(isoTime) - now) / 1000;
  return d >= 0 ? `in ${span(d)}` : `${span(-d)} ago`;
}

/** The moment a record turns live or is removed, in words. */
function nextMoment(r: RecordRow, now: number): Html {
  if (r.phase === 'pending')
    return r.liveAt
      ? html`live at ${time(r.liveAt)} <span class="eta" data-eta="${r.liveAt}">(${relative(r.liveAt, now)})</span>`
      : html`live 2×TTL after every authoritative server serves it`;
  if (r.phase === 'retiring')
    return r.removeAt
      ? html`removed after ${time(r.removeAt)} <span class="eta" data-eta="${r.removeAt}">(${relative(r.removeAt, now)})</span>`
      : html`removal pending`;
  if (r.phase === 'live' && r.liveAt) return html`live since ${time(r.liveAt)}`;
  return html``;
}

/** A bar from publication over pending, live and retiring to removal, on the service's own
 *  time window, with a mark at now. */
function timeline(r: RecordRow, win: { from: number; to: number }, now: number): Html {
  const pos = (t: number) =>
    Math.min(100, Math.max(0, ((t - win.from) / (win.to - win.from)) * 100));
  const at = (iso?: string) => (iso ? Date.parse(iso) : undefined);
  const published = at(r.publishedAt);
  const live = at(r.liveAt);
  const retiring = at(r.retiringSince);
  const removed = at(r.removeAt);
  const segs: { cls: string; from: number; to: number }[] = [];
  if (published !== undefined) {
    const pendingEnd = live ?? (r.phase === 'pending' ? now : (retiring ?? now));
    segs.push({ cls: 'pending', from: published, to: Math.min(pendingEnd, retiring ?? Infinity) });
    if (live !== undefined)
      segs.push({ cls: 'live', from: live, to: retiring ?? Math.max(now, live) });
  }
  if (retiring !== undefined)
    segs.push({ cls: 'retiring', from: retiring, to: removed ?? Math.max(now, retiring) });
  const bars = segs
    .filter((s) => s.to >= s.from)
    .map(
      (s) =>
        html`<span class="seg ${s.cls}" style="left:${pos(s.from).toFixed(2)}%;width:${Math.max(0.5, pos(s.to) - pos(s.from)).toFixed(2)}%"></span>`,
    );
  return html`<div class="timeline" aria-hidden="true">${bars}<span class="now" style="left:${pos(now).toFixed(2)}%"></span></div>`;
}

function window(s: ServiceModel, now: number): { from: number; to: number } {
  const times = s.records.flatMap((r) =>
    [r.publishedAt, r.liveAt, r.retiringSince, r.removeAt]
      .filter((x): x is string => !!x)
      .map(Date.parse),
  );
  const from = Math.min(now, ...times);
  const to = Math.max(now, ...times);
  const pad = Math.max(60_000, (to - from) * 0.05);
  return { from: from - pad, to: to + pad };
}

function recordsTable(s: ServiceModel, now: number): Html {
  if (!s.records.length) return html`<p class="none">No records owned by tlsa.</p>`;
  const win = window(s, now);
  const rows = s.records.map(
    (
      r,
    ) => html`<tr class="record" data-owner="${r.owner}" data-record="${r.rdata}" data-phase="${r.phase}">
<td class="owner">${r.owner}</td><td class="rdata" title="${r.rdata}">${r.rdata.length > 26 ? `${r.rdata.slice(0, 25)}…` : r.rdata}</td>
<td><span class="phase ${r.phase}">${r.phase}</span></td>
<td>${timeline(r, win, now)}</td>
<td class="next">${nextMoment(r, now)}</td>
<td class="waits">${r.waitsFor}</td></tr>`,
  );
  return html`<table class="records"><thead><tr><th>owner</th><th>record</th><th>phase</th><th>timeline <small>(${time(new Date(win.from).toISOString())} – ${time(new Date(win.to).toISOString())})</small></th><th>next</th><th>waits for</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function stagedList(s: ServiceModel, now: number): Html {
  if (!s.staged.length) return html``;
  const items = s.staged.map(
    (w) =>
      html`<li class="staged" data-chain="${w.chain}"${w.eta ? html` data-eta="${w.eta}"` : ''}><code>${w.chain}</code> waits for ${w.reason}${
        w.eta
          ? html`; installed at ${time(w.eta)} <span class="eta">(${relative(w.eta, now)})</span>`
          : ''
      }</li>`,
  );
  return html`<h3>Staged chains</h3><ul>${items}</ul>`;
}

function servedTable(s: ServiceModel, now: number): Html {
  if (!s.served.length) return html`<h3>Served chains</h3><p class="none">Not checked yet.</p>`;
  const rows = s.served.map(
    (
      o,
    ) => html`<tr class="served" data-address="${o.address}" data-port="${o.port}" data-key-type="${o.keyType}" data-verdict="${o.verdict}">
<td>${o.address}</td><td>${o.port}</td><td>${o.keyType}</td><td><span class="verdict ${o.verdict}">${o.verdict}</span>${o.unmatched ? html` <strong class="alert">no published record matches</strong>` : ''}</td>
<td>${o.leaf ?? ''}</td><td>${o.notAfter ? html`${time(o.notAfter)} (${relative(o.notAfter, now)})` : ''}</td><td class="detail">${o.detail}</td></tr>`,
  );
  return html`<h3>Served chains</h3><table class="served"><thead><tr><th>address</th><th>port</th><th>key type</th><th>verdict</th><th>leaf</th><th>expires</th><th>detail</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function serviceSection(s: ServiceModel, now: number): Html {
  return html`<section class="service" data-service="${s.name}">
<h2>${s.name} <small>${s.host}</small>${s.configured ? '' : html` <span class="phase retiring">not in the configuration</span>`}</h2>
<h3>Records</h3>${recordsTable(s, now)}${stagedList(s, now)}${servedTable(s, now)}</section>`;
}

const CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .3em;border-bottom:1px solid #ccc}
h2 small{font-weight:normal;color:#666}h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#eee;font-weight:600}td.owner,td.rdata,code{font-family:ui-monospace,monospace;font-size:12px}
td.waits,td.detail{font-size:12px;color:#555;max-width:28em}
.phase,.verdict{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;color:#fff;background:#888}
.pending{background:#d08b00}.live{background:#2e7d32}.retiring{background:#757575}.publishing,.removing{background:#1565c0}
.match{background:#2e7d32}.mismatch{background:#c62828}.unreachable,.unknown{background:#6d4c41}
.alert{color:#c62828}.timeline{position:relative;width:220px;height:12px;background:#eee;border-radius:2px}
.seg{position:absolute;top:0;height:12px}.now{position:absolute;top:-3px;width:2px;height:18px;background:#000}
.facts{color:#444}.none{color:#777;font-style:italic}
`;

export function renderPage(m: MonitorModel): string {
  const now = Date.parse(m.now);
  const f = m.facts;
  const last = f.lastRun
    ? html`last run ${time(f.lastRun.at)} (exit ${f.lastRun.exitCode}${f.lastRun.error ? html`: ${f.lastRun.error}` : ''})`
    : html`no run finished yet`;
  const next = f.nextRun
    ? html`; <span class="next-run">next run ${time(f.nextRun.at)} (${relative(f.nextRun.at, now)}): ${f.nextRun.why}</span>`
    : '';
  const check = f.check
    ? html`; served chains checked ${time(f.check.at)}`
    : html`; served chains not checked yet`;
  const errors = f.providerErrors.length
    ? html`<p class="facts">Provider errors since start: ${f.providerErrors.map((e) => `${e.provider} ${e.kind} ×${e.count}`).join(', ')}</p>`
    : '';
  const doc = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tlsa status</title><style>${new Html(CSS)}</style></head>
<body><h1>tlsa status</h1>
<p class="facts">As of ${time(m.now)}: ${last}${next}${check}. Last successful run ${f.lastSuccessAt ? html`${time(f.lastSuccessAt)}` : 'none yet'}.</p>${errors}
${m.services.map((s) => serviceSection(s, now))}
</body></html>
`;
  return doc.text;
}
