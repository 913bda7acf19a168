// Two servers loaded at the same moment while they share one core: what outside noise does, it does to both.
import { load } from './load';
import type { LoadResult } from './load';
import type { Child } from './proc';

export interface CpuSample extends LoadResult {
  /** Server CPU time per 2xx response, microseconds (user + system, every thread of the server). */
  cpuUs: number;
  /** Server CPU use over the run, in cores. */
  cores: number;
}

interface Server {
  url: string;
}

export function withCpu(result: LoadResult, cpuMs: number): CpuSample {
  return { ...result, cpuUs: (cpuMs * 1000) / Math.max(1, result.ok), cores: cpuMs / 1000 / result.seconds };
}

/**
 * Loads `a` and `b` at once, `connections` each, for `seconds`. With both servers pinned to the same
 * CPU and both saturated, the scheduler gives each half of it, so b's throughput over a's is the
 * ratio of their CPU cost per request, whatever else the machine is doing meanwhile.
 */
export async function simultaneous(a: Child<Server>, b: Child<Server>, connections: number, seconds: number): Promise<{ a: CpuSample; b: CpuSample }> {
  const [a0, b0] = await Promise.all([a.call<number>('cpuMs'), b.call<number>('cpuMs')]);
  const [ra, rb] = await Promise.all([load(a.ready.url, { connections, seconds }), load(b.ready.url, { connections, seconds })]);
  const [a1, b1] = await Promise.all([a.call<number>('cpuMs'), b.call<number>('cpuMs')]);
  return { a: withCpu(ra, a1 - a0), b: withCpu(rb, b1 - b0) };
}
