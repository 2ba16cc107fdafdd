import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration } from 'prom-client';

/**
 * The one Prometheus registry of a process, served at GET /metrics. Metrics are created on first
 * use and shared after that: tests start several registries in one process, and prom-client
 * refuses a second metric of the same name.
 */
export const metricsRegistry = new Registry();
// Process metrics (CPU, resident memory, event-loop lag, heap, open handles) under the usual names.
collectDefaultMetrics({ register: metricsRegistry });

/** Functions that refresh gauges read from elsewhere (database, NATS) right before a scrape. */
const scrapeHooks = new Set<() => Promise<void>>();
const SCRAPE_HOOK_TIMEOUT_MS = 2_000;

/**
 * Runs `hook` before every scrape, at most SCRAPE_HOOK_TIMEOUT_MS, so a hung dependency cannot
 * hang /metrics; its errors are the hook's to report (set an "up" gauge to 0, say). Returns the
 * function that removes it.
 */
export function onScrape(hook: () => Promise<void>): () => void {
  scrapeHooks.add(hook);
  return () => void scrapeHooks.delete(hook);
}

async function runScrapeHooks(): Promise<void> {
  await Promise.all(
    [...scrapeHooks].map((hook) => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, SCRAPE_HOOK_TIMEOUT_MS)));
      return Promise.race([hook().catch(() => {}), deadline]).finally(() => clearTimeout(timer));
    }),
  );
}

function existing<T>(name: string): T | undefined {
  return metricsRegistry.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string>(config: Omit<CounterConfiguration<L>, 'registers'>): Counter<L> {
  return existing<Counter<L>>(config.name) ?? new Counter({ ...config, registers: [metricsRegistry] });
}

export function gauge<L extends string>(config: Omit<GaugeConfiguration<L>, 'registers'>): Gauge<L> {
  return existing<Gauge<L>>(config.name) ?? new Gauge({ ...config, registers: [metricsRegistry] });
}

export function histogram<L extends string>(config: Omit<HistogramConfiguration<L>, 'registers'>): Histogram<L> {
  return existing<Histogram<L>>(config.name) ?? new Histogram({ ...config, registers: [metricsRegistry] });
}

/** The Prometheus text exposition of every metric of this process. */
export async function metricsText(): Promise<{ contentType: string; body: string }> {
  await runScrapeHooks();
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}
