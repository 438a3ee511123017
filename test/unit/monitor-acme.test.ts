/** The daemon's gauge of built-in ACME renewals: seconds until each lineage's next renewal, with
 *  where that time comes from; absent without `acme:`. */
import { describe, expect, it } from 'vitest';
import { metricFamilies } from '../../src/monitor/metrics.js';
import { type MonitorInput, monitorModel } from '../../src/monitor/model.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const BASE = {
  config: { raw: { services: {}, verify: { propagation: false } } },
  state: { version: 1, records: [] },
  now: NOW,
  facts: { startedAt: NOW.toISOString(), staged: [], providerErrors: [] },
} as unknown as MonitorInput;

const gauge = (input: MonitorInput) =>
  metricFamilies(monitorModel(input)).find((f) => f.name === 'tlsa_acme_renewal_in_seconds')!
    .samples;

describe('tlsa_acme_renewal_in_seconds', () => {
  it('per service, key type and source; negative when overdue', () => {
    expect(
      gauge({
        ...BASE,
        renewals: [
          { service: 'mx', keyType: 'ecdsa-p256', at: '2026-06-01T01:00:00.000Z', source: 'ari' },
          { service: 'mx', keyType: 'rsa-2048', at: '2026-05-31T23:59:30.000Z', source: 'retry' },
        ],
      }),
    ).toEqual([
      { labels: { service: 'mx', key_type: 'ecdsa-p256', source: 'ari' }, value: 3600 },
      { labels: { service: 'mx', key_type: 'rsa-2048', source: 'retry' }, value: -30 },
    ]);
  });

  it('no samples without built-in ACME', () => {
    expect(gauge(BASE)).toEqual([]);
  });
});
