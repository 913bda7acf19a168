// `npm run bench`: runs every scenario with its baseline in the same run and writes docs/BENCHMARKS.md.
//
//   npm run bench                  full run (~7 minutes), regenerates docs/BENCHMARKS.md
//   npm run bench -- --quick       smoke test of the harness (< 60 s): short windows, report to a temp file
//   npm run bench -- --only 1,4    some scenarios only (report to a temp file)
//
// Exits non-zero only when a scenario crashes: a missed target is a finding, not a failure.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { methodology } from './lib/methodology';
import { pinTools, placement } from './lib/placement';
import { renderReport } from './lib/report';
import type { Section } from './lib/report';
import { httpOverhead } from './scenarios/http';
import { naiveComparison } from './scenarios/naive';
import type { NaivePlan } from './scenarios/naive';
import type { OverheadPlan } from './scenarios/overhead';
import { deliveryThroughput, hotPathAndMemory, pacing } from './scenarios/reporter';
import type { ReporterPlan } from './scenarios/reporter';
import { redisQueue } from './scenarios/redis';
import type { RedisPlan } from './scenarios/redis';
import { spoolScenario } from './scenarios/spool';
import { deliveryThreadScenario } from './scenarios/delivery-thread';
import type { DeliveryThreadPlan } from './scenarios/delivery-thread';
import type { SpoolPlan } from './scenarios/spool';

const ROOT = path.join(__dirname, '..');
const REPORT = path.join(ROOT, 'docs', 'BENCHMARKS.md');
const NOTES = path.join(__dirname, 'NOTES.md');
/** What the scenarios load from dist, in build order. */
const PACKAGES = ['core', 'testing', 'express', 'nestjs', 'redis'];

export interface Plan {
  overhead: OverheadPlan;
  naive: NaivePlan;
  reporter: ReporterPlan;
  redis: RedisPlan;
  spool: SpoolPlan;
  deliveryThread: DeliveryThreadPlan;
}

const FULL: Plan = {
  overhead: { warmupSeconds: 8, rounds: 6, pairs: 3, seconds: 3, connections: 10, latencyConnections: 1 },
  naive: { warmupSeconds: 6, rounds: 3, seconds: 3, connections: [10, 50] },
  reporter: {
    delivery: { seconds: 8, warmupSeconds: 2 },
    pacing: { rps: 200, seconds: 30, warmupSeconds: 2 },
    hotPath: { runs: 7, ops: 200_000 },
    memory: { events: 1_000_000 },
  },
  redis: { events: 300_000, hotPath: { runs: 7, ops: 100_000 } },
  spool: {
    hotPath: { runs: 7, ops: 50_000, perTurn: 100 },
    delivery: { seconds: 8, warmupSeconds: 2 },
    overhead: { warmupSeconds: 8, rounds: 6, pairs: 3, seconds: 3, connections: 10, latencyConnections: 1 },
  },
  deliveryThread: { loop: { seconds: 8, warmupSeconds: 2 }, express: { warmupSeconds: 4, rounds: 5, seconds: 3, connections: 5 } },
};

const QUICK: Plan = {
  overhead: { warmupSeconds: 0.3, rounds: 1, pairs: 1, seconds: 0.5, connections: 10, latencyConnections: 1 },
  naive: { warmupSeconds: 0.3, rounds: 1, seconds: 0.5, connections: [10] },
  reporter: {
    delivery: { seconds: 0.5, warmupSeconds: 0.3 },
    pacing: { rps: 200, seconds: 1, warmupSeconds: 0.3 },
    hotPath: { runs: 3, ops: 20_000 },
    memory: { events: 50_000 },
  },
  redis: { events: 20_000, hotPath: { runs: 3, ops: 10_000 } },
  spool: {
    hotPath: { runs: 3, ops: 5_000, perTurn: 100 },
    delivery: { seconds: 0.5, warmupSeconds: 0.3 },
    overhead: { warmupSeconds: 0.3, rounds: 1, pairs: 1, seconds: 0.5, connections: 10, latencyConnections: 1 },
  },
  deliveryThread: { loop: { seconds: 0.5, warmupSeconds: 0.3 }, express: { warmupSeconds: 0.3, rounds: 1, seconds: 0.5, connections: 5 } },
};

interface Scenario {
  id: string;
  run: (plan: Plan, log: (line: string) => void) => Promise<Section>;
}

const SCENARIOS: Scenario[] = [
  { id: '1', run: (plan, log) => httpOverhead('1', 'express', plan.overhead, log) },
  { id: '2a', run: (plan, log) => httpOverhead('2a', 'nest-express', plan.overhead, log) },
  { id: '2b', run: (plan, log) => httpOverhead('2b', 'nest-fastify', plan.overhead, log) },
  { id: '3', run: (plan, log) => naiveComparison('3', plan.naive, log) },
  { id: '4', run: (plan, log) => deliveryThroughput('4', plan.reporter, log) },
  { id: '5', run: (plan, log) => pacing('5', plan.reporter, log) },
  { id: '6', run: (plan, log) => hotPathAndMemory('6', plan.reporter, log) },
  { id: '7', run: (plan, log) => redisQueue('7', plan.redis, log) },
  { id: '8', run: (plan, log) => spoolScenario('8', plan.spool, log) },
  { id: '9', run: (plan, log) => deliveryThreadScenario('9', plan.deliveryThread, log) },
];

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return latest;
}

/** Builds the packages whose dist is missing or older than their sources (a fresh clone, or edited sources). */
function buildIfStale(): void {
  const stale = PACKAGES.filter((name) => {
    const dir = path.join(ROOT, 'packages', name);
    const built = path.join(dir, 'dist', 'index.js');
    return !existsSync(built) || newest(path.join(dir, 'src')) > statSync(built).mtimeMs;
  });
  if (stale.length === 0) return;
  console.log(`building ${stale.map((name) => `@metered/${name}`).join(', ')} (and what they depend on)…`);
  const scopes = stale.flatMap((name) => ['--scope', `@metered/${name}`]);
  execFileSync('npx', ['lerna', 'run', 'build', '--include-dependencies', ...scopes], { cwd: ROOT, stdio: 'inherit' });
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((n) => n.toFixed(2))
    .join(', ');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const onlyAt = args.indexOf('--only');
  const only = onlyAt === -1 ? undefined : new Set((args[onlyAt + 1] ?? '').split(','));
  const plan = quick ? QUICK : FULL;
  const started = performance.now();
  buildIfStale();
  pinTools();
  const loadBefore = loadAverage();
  console.log(`metered benchmarks${quick ? ' (quick)' : ''}: ${placement.describe}; load average ${loadBefore}`);

  const sections: Section[] = [];
  for (const scenario of SCENARIOS) {
    if (only !== undefined && !only.has(scenario.id)) continue;
    const t0 = performance.now();
    console.log(`\n[${scenario.id}] …`);
    try {
      const result = await scenario.run(plan, (line) => console.log(line));
      sections.push(result);
      for (const check of result.checks) console.log(`  ${check.met ? 'met   ' : 'MISSED'} ${check.metric}: ${check.measured} (target ${check.target})`);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      console.error(`  scenario ${scenario.id} crashed: ${message}`);
      sections.push({ id: scenario.id, title: `scenario ${scenario.id}`, checks: [], tables: [], notes: [], error: message });
    }
    console.log(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }

  const command = `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`;
  const markdown = renderReport(
    {
      command,
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      node: process.version,
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
      cores: placement.cores,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      placement: placement.describe,
      loadBefore,
      loadAfter: loadAverage(),
      durationSeconds: (performance.now() - started) / 1000,
      quick,
    },
    sections,
    methodology(plan),
    existsSync(NOTES) ? readFileSync(NOTES, 'utf8') : '',
  );
  // Only a full run of every scenario may replace the committed report.
  const target = quick || only !== undefined ? path.join(os.tmpdir(), 'metered-benchmarks.md') : REPORT;
  writeFileSync(target, markdown);
  console.log(`\nreport written to ${target} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  if (sections.some((s) => s.error !== undefined)) process.exitCode = 1;
}

void main();
