/** Prometheus text format of the metric families, through prom-client (with its process
 *  metrics: memory, CPU, event loop lag). */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { MetricFamily } from './metrics.js';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export interface Exposition {
  text(families: MetricFamily[]): Promise<string>;
}

/** One per daemon: the process metrics accumulate in their own registry; tlsa's families are
 *  rebuilt from the model at every scrape (a record that is gone leaves no stale series). */
export function exposition(): Exposition {
  const processMetrics = new Registry();
  collectDefaultMetrics({ register: processMetrics });
  return {
    async text(families) {
      const own = new Registry();
      for (const fam of families) {
        const config = {
          name: fam.name,
          help: fam.help,
          labelNames: [...fam.labelNames],
          registers: [own],
        };
        if (fam.type === 'counter') {
          const c = new Counter(config);
          for (const s of fam.samples) c.inc(s.labels, s.value);
        } else {
          const g = new Gauge(config);
          for (const s of fam.samples) g.set(s.labels, s.value);
        }
      }
      return Registry.merge([own, processMetrics]).metrics();
    },
  };
}
