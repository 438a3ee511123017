/** src/monitor: the daemon's metrics and status page from state + config + facts + clock (pure),
 *  the Prometheus text prom-client makes of them, the listen rules, and the example alert
 *  rules in contrib/prometheus. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import type { OwnedRecord, StateFile } from '../../src/engine/state.js';
import { exposition } from '../../src/monitor/exposition.js';
import { METRICS, metricFamilies, type MetricFamily } from '../../src/monitor/metrics.js';
import {
  monitorModel,
  VERDICTS,
  type DaemonFacts,
  type MonitorInput,
} from '../../src/monitor/model.js';
import { escapeHtml, renderPage } from '../../src/monitor/page.js';
import { providerErrorKind } from '../../src/monitor/provider-errors.js';
import { checkListen, isLoopback, parseListen } from '../../src/monitor/server.js';
import { REPO_ROOT } from '../helpers/cli.js';

const NOW = new Date('2026-12-01T12:00:00.000Z');
const at = (secondsFromNow: number) =>
  new Date(NOW.getTime() + secondsFromNow * 1000).toISOString();
const OWNER = '_25._tcp.mx.example.org.';
const HEX = (c: string) => c.repeat(64);

function config(services: Record<string, { host: string; grace_s?: number }>) {
  return configSchema.parse({
    providers: { zone: { type: 'zonefile', path: 'zone.db' } },
    services: Object.fromEntries(
      Object.entries(services).map(([name, s]) => [
        name,
        { ...s, ports: [25], provider: 'zone', certificates: [{ lineage: 'live/mx' }] },
      ]),
    ),
    verify: { propagation: true },
  });
}

function record(data: string, over: Partial<OwnedRecord>): OwnedRecord {
  return {
    owner: OWNER,
    usage: 3,
    selector: 1,
    matching: 1,
    data,
    provider: 'zone',
    service: 'mx',
    ttl: 60,
    status: 'published',
    addedAt: at(-100),
    publishedAt: at(-100),
    by: 'test',
    ...over,
  };
}

/** A rollover in progress: the old key live and retiring, the new one pending. */
const STATE: StateFile = {
  version: 1,
  records: [
    // published 100 s ago, on every server 90 s ago, TTL 60: live 30 s from now
    record(HEX('a'), { seenAt: at(-90) }),
    // not yet on every authoritative server: pending, no ETA
    record(HEX('b'), { usage: 2 }),
    // live long ago
    record(HEX('c'), { addedAt: at(-9000), publishedAt: at(-9000), seenAt: at(-8990) }),
    // retiring for 20 s, grace 60 s: removal in 40 s
    record(HEX('d'), {
      status: 'retiring',
      addedAt: at(-9000),
      publishedAt: at(-9000),
      seenAt: at(-8990),
      retiringSince: at(-20),
    }),
  ],
};

const FACTS: DaemonFacts = {
  startedAt: at(-3600),
  lastRun: { at: at(-10), exitCode: 0 },
  lastSuccessAt: at(-10),
  staged: [
    { service: 'mx', chain: '/le/live/mx', reason: 'its records to be 2×TTL old', eta: at(30) },
  ],
  nextRun: { at: at(30), why: '1 record(s) at _25._tcp.mx.example.org. turn live' },
  providerErrors: [{ provider: 'zone', kind: 'reload', count: 2 }],
  check: {
    at: at(-5),
    observations: [
      {
        service: 'mx',
        host: 'mx.example.org',
        port: 25,
        address: '127.0.0.1',
        keyType: 'ecdsa',
        verdict: 'mismatch',
        unmatched: true,
        leaf: 'mx.example.org',
        notAfter: at(10 * 86400),
        detail: 'no usable record matches',
      },
      {
        service: 'mx',
        host: 'mx.example.org',
        port: 25,
        address: '::1',
        keyType: 'any',
        verdict: 'unreachable',
        detail: '::1 port 25: connection refused',
      },
    ],
  },
};

const INPUT: MonitorInput = {
  config: { raw: config({ mx: { host: 'mx.example.org' } }) },
  state: STATE,
  now: NOW,
  facts: FACTS,
};

function samples(families: MetricFamily[], name: string) {
  const f = families.find((x) => x.name === name);
  if (!f) throw new Error(`no family ${name}`);
  return f.samples;
}

describe('monitorModel and metricFamilies', () => {
  const families = metricFamilies(monitorModel(INPUT));

  it('counts records per service, owner and phase (every phase, zeros included)', () => {
    const byPhase = Object.fromEntries(
      samples(families, 'tlsa_records').map((s) => [s.labels.phase, s.value]),
    );
    expect(byPhase).toEqual({ publishing: 0, pending: 2, live: 1, retiring: 1, removing: 0 });
    for (const s of samples(families, 'tlsa_records'))
      expect(s.labels).toMatchObject({ service: 'mx', owner: OWNER });
  });

  it('gives the seconds until each pending record turns live (only where known) and each retiring one is removed', () => {
    expect(samples(families, 'tlsa_record_live_in_seconds')).toEqual([
      { labels: { service: 'mx', owner: OWNER, record: `3 1 1 ${HEX('a')}` }, value: 30 },
    ]);
    expect(samples(families, 'tlsa_record_removal_in_seconds')).toEqual([
      { labels: { service: 'mx', owner: OWNER, record: `3 1 1 ${HEX('d')}` }, value: 40 },
    ]);
  });

  it('gives the seconds until each staged chain is installed', () => {
    expect(samples(families, 'tlsa_staged_chain_install_in_seconds')).toEqual([
      { labels: { service: 'mx', chain: '/le/live/mx' }, value: 30 },
    ]);
    expect(samples(families, 'tlsa_staged_chain_waiting')[0]!.value).toBe(1);
  });

  it('sets the mismatch gauge, the verdicts per host × port × address × key type, and the days to expiry', () => {
    const served = { service: 'mx', host: 'mx.example.org', port: '25' };
    expect(samples(families, 'tlsa_served_chain_unmatched')).toEqual([
      { labels: { ...served, address: '127.0.0.1', key_type: 'ecdsa' }, value: 1 },
    ]);
    const verdicts = samples(families, 'tlsa_check_verdict');
    expect(verdicts).toHaveLength(2 * VERDICTS.length);
    expect(verdicts.filter((s) => s.value === 1).map((s) => s.labels)).toEqual([
      { ...served, address: '127.0.0.1', key_type: 'ecdsa', verdict: 'mismatch' },
      { ...served, address: '::1', key_type: 'any', verdict: 'unreachable' },
    ]);
    expect(samples(families, 'tlsa_certificate_expiry_days')).toEqual([
      { labels: { ...served, address: '127.0.0.1', key_type: 'ecdsa' }, value: 10 },
    ]);
  });

  it('gives the time since the last successful run (before the first: since the start), and provider errors by provider and kind', () => {
    expect(samples(families, 'tlsa_seconds_since_last_successful_run')[0]!.value).toBe(10);
    expect(samples(families, 'tlsa_last_successful_run_timestamp_seconds')[0]!.value).toBe(
      Date.parse(at(-10)) / 1000,
    );
    expect(samples(families, 'tlsa_provider_errors_total')).toEqual([
      { labels: { provider: 'zone', kind: 'reload' }, value: 2 },
    ]);
    const fresh = metricFamilies(
      monitorModel({
        ...INPUT,
        facts: { startedAt: at(-50), staged: [], providerErrors: [] },
      }),
    );
    expect(samples(fresh, 'tlsa_seconds_since_last_successful_run')[0]!.value).toBe(50);
    expect(samples(fresh, 'tlsa_last_successful_run_timestamp_seconds')).toEqual([]);
    expect(samples(fresh, 'tlsa_served_chain_unmatched')).toEqual([]);
  });

  it('reads staged chains from the files when given (a chain staged after the last run): installed when its first record turns live', () => {
    const rec = (data: string) => ({
      owner: OWNER,
      usage: 3 as const,
      selector: 1 as const,
      matching: 1 as const,
      data,
      provider: 'zone',
    });
    const m = monitorModel({
      ...INPUT,
      facts: { ...FACTS, staged: [] },
      staged: [
        { service: 'mx', chain: 'new', records: [rec(HEX('a')), rec(HEX('b'))] },
        { service: 'mx', chain: 'unpublished', records: [rec(HEX('f'))] },
      ],
    });
    expect(m.services[0]!.staged).toEqual([
      {
        service: 'mx',
        chain: 'new',
        reason: 'its records to be 2×TTL old',
        eta: at(30),
        inSeconds: 30,
      },
      { service: 'mx', chain: 'unpublished', reason: 'its records to be published' },
    ]);
  });

  it('keeps records of a service no longer configured, under its name', () => {
    const m = monitorModel({
      ...INPUT,
      state: { version: 1, records: [record(HEX('e'), { service: 'old', seenAt: at(-90) })] },
    });
    expect(m.services.map((s) => [s.name, s.configured, s.host])).toEqual([
      ['mx', true, 'mx.example.org'],
      ['old', false, 'mx.example.org'],
    ]);
  });

  it('prom-client writes them in the Prometheus text format, with the process metrics', async () => {
    const text = await exposition().text(families);
    expect(text).toContain('# TYPE tlsa_served_chain_unmatched gauge');
    expect(text).toMatch(
      /^tlsa_served_chain_unmatched\{service="mx",host="mx.example.org",port="25",address="127.0.0.1",key_type="ecdsa"\} 1$/m,
    );
    expect(text).toMatch(/^tlsa_provider_errors_total\{provider="zone",kind="reload"\} 2$/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
  });
});

describe('status page', () => {
  it('shows each record with its phase and the moment it turns live or is removed, staged chains, served chains with verdicts', () => {
    const page = renderPage(monitorModel(INPUT));
    expect(page).toMatch(/^<!DOCTYPE html>/);
    expect(page).toContain(`data-record="3 1 1 ${HEX('a')}" data-phase="pending"`);
    expect(page).toContain(`live at <time datetime="${at(30)}">`);
    expect(page).toContain('(in 30s)');
    expect(page).toContain(`data-record="3 1 1 ${HEX('d')}" data-phase="retiring"`);
    expect(page).toContain('(in 40s)');
    expect(page).toMatch(
      /data-chain="\/le\/live\/mx"[^>]*>.*waits for its records to be 2×TTL old/,
    );
    expect(page).toMatch(
      /data-address="127.0.0.1" data-port="25" data-key-type="ecdsa" data-verdict="mismatch"/,
    );
    expect(page).toContain('no published record matches');
    expect(page).toContain('next run');
    // No script, nothing fetched from elsewhere.
    expect(page).not.toMatch(/<script|<link|src=|https?:\/\//i);
  });

  it('escapes every text from the configuration, the state and the checks', () => {
    const evil = '<img src=x onerror=alert(1)>';
    const page = renderPage(
      monitorModel({
        ...INPUT,
        config: { raw: config({ [`mx${evil}`]: { host: 'mx.example.org' } }) },
        state: { version: 1, records: [record(HEX('a'), { service: `mx${evil}` })] },
        facts: {
          ...FACTS,
          staged: [{ service: `mx${evil}`, chain: `"${evil}`, reason: evil }],
          check: {
            at: at(-5),
            observations: [
              { ...FACTS.check!.observations[0]!, service: `mx${evil}`, detail: evil, leaf: evil },
            ],
          },
        },
      }),
    );
    expect(page).not.toContain('<img');
    expect(page).toContain(escapeHtml(evil));
    expect(escapeHtml(`a"b'c<d>&`)).toBe('a&quot;b&#39;c&lt;d&gt;&amp;');
  });
});

describe('listen address', () => {
  it('takes HOST:PORT and [IPv6]:PORT, loopback only unless allowed', () => {
    expect(parseListen('127.0.0.1:9153')).toEqual({ host: '127.0.0.1', port: 9153 });
    expect(parseListen('[::1]:9153')).toEqual({ host: '::1', port: 9153 });
    expect(() => parseListen('9153')).toThrow(/HOST:PORT/);
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost'])
      expect(isLoopback(h)).toBe(true);
    for (const h of ['0.0.0.0', '192.0.2.1', '::', 'mx.example.org'])
      expect(isLoopback(h)).toBe(false);
    expect(() => checkListen('0.0.0.0:9153', false)).toThrow(/not a loopback address/);
    expect(checkListen('0.0.0.0:9153', true)).toEqual({ host: '0.0.0.0', port: 9153 });
    const listen = configSchema.parse({
      providers: {},
      services: {},
      monitor: { listen: '127.0.0.1:9153' },
    });
    expect(listen.monitor).toEqual({
      listen: '127.0.0.1:9153',
      allow_remote: false,
      check_interval_s: 300,
    });
    expect(configSchema.parse({ providers: {}, services: {} }).monitor).toEqual({
      allow_remote: false,
      check_interval_s: 300,
    });
  });
});

describe('provider error kinds', () => {
  it('tells credentials from throttling, timeouts, the network and reloads', () => {
    expect(providerErrorKind('cloudflare: HTTP 403 Forbidden')).toBe('auth');
    expect(providerErrorKind('route53: Throttling: Rate exceeded')).toBe('throttled');
    expect(providerErrorKind('powerdns: connect ECONNREFUSED 127.0.0.1:8081')).toBe('network');
    expect(providerErrorKind('rfc2136: no answer: timed out after 5 s')).toBe('timeout');
    expect(providerErrorKind('zone: reload command failed (exit 1)')).toBe('reload');
    expect(providerErrorKind('desec: something odd')).toBe('other');
  });
});

describe('contrib/prometheus/tlsa-alerts.yml', () => {
  const file = join(REPO_ROOT, 'contrib', 'prometheus', 'tlsa-alerts.yml');
  const rules = parse(readFileSync(file, 'utf8')) as {
    groups: { name: string; rules: Record<string, unknown>[] }[];
  };

  it('is a Prometheus rule file: groups of named alerts with an expression, severity and summary', () => {
    expect(Array.isArray(rules.groups)).toBe(true);
    for (const g of rules.groups) {
      expect(typeof g.name).toBe('string');
      expect(g.rules.length).toBeGreaterThan(0);
      for (const r of g.rules) {
        expect(
          Object.keys(r).every((k) =>
            ['alert', 'expr', 'for', 'labels', 'annotations'].includes(k),
          ),
          JSON.stringify(r),
        ).toBe(true);
        expect(r.alert).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
        expect(typeof r.expr).toBe('string');
        if (r.for !== undefined) expect(r.for).toMatch(/^\d+[smhd]$/);
        expect((r.labels as { severity?: string }).severity).toMatch(/^(critical|warning)$/);
        expect(typeof (r.annotations as { summary?: string }).summary).toBe('string');
      }
    }
  });

  it('uses only metrics and labels the daemon exposes, and covers the mismatch gauge', () => {
    const byName = new Map(Object.values(METRICS).map((m) => [m.name as string, m]));
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => String(r.expr)));
    for (const expr of exprs) {
      for (const m of expr.matchAll(/(tlsa_[a-z_]+)(?:\{([^}]*)\})?/g)) {
        const metric = byName.get(m[1]!);
        expect(metric, `${m[1]} in ${expr}`).toBeDefined();
        for (const l of (m[2] ?? '').matchAll(/([a-z_]+)\s*[=!~]+\s*"([^"]*)"/g)) {
          expect(metric!.labelNames as readonly string[]).toContain(l[1]);
          if (l[1] === 'verdict')
            for (const v of l[2]!.split('|')) expect(VERDICTS as readonly string[]).toContain(v);
        }
      }
    }
    expect(exprs).toContain('tlsa_served_chain_unmatched == 1');
  });
});
