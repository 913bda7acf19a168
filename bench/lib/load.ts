// HTTP load with autocannon; latency percentiles are computed here because autocannon's histogram keeps whole milliseconds.
import autocannon from 'autocannon';
import { percentile } from './stats';

export interface LoadOptions {
  /** Keep-alive connections, each with one request in flight. */
  connections: number;
  seconds: number;
  /** Requests per second across all connections; omitted: as fast as the server answers. */
  rate?: number;
}

export interface LoadResult {
  /** 2xx responses per second. */
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  seconds: number;
  /** Latency of 2xx responses, milliseconds. */
  p50: number;
  p99: number;
}

/** Drives `url` with GET requests for `seconds` and measures throughput and latency. */
export function load(url: string, options: LoadOptions): Promise<LoadResult> {
  // Preallocated and grown by doubling: a push per response must not turn into the load generator's own GC noise.
  let latencies = new Float64Array(1 << 18);
  let ok = 0;
  let non2xx = 0;
  // autocannon notices the end of `duration` only at its next sample: 100 ms samples make runs end on time.
  const settings: autocannon.Options = { url, connections: options.connections, duration: options.seconds, pipelining: 1, sampleInt: 100 };
  if (options.rate !== undefined) settings.overallRate = options.rate;
  return new Promise((resolve, reject) => {
    const instance = autocannon(settings, (error, result) => {
      if (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      const sorted = latencies.subarray(0, ok).sort();
      resolve({
        rps: ok / result.duration,
        ok,
        non2xx,
        errors: result.errors,
        seconds: result.duration,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
      });
    });
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode < 200 || statusCode >= 300) {
        non2xx += 1;
        return;
      }
      if (ok === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[ok++] = responseTime;
    });
  });
}
