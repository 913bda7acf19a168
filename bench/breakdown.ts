// What each step of metering costs a hello-world server, each step measured against bare with simultaneous rounds.
//
//   npx tsx --tsconfig bench/tsconfig.run.json bench/breakdown.ts [express|nest-express|nest-fastify] [--rounds 6] [--seconds 3] [--before DIR]
//
// --before DIR (express): instead of the steps, bare, meterUsage as built in DIR (a directory whose
// node_modules holds another build of @metered/core and @metered/express, e.g. the committed code
// before a change) and meterUsage as built here, each against bare; then the two head to head
// (here ÷ DIR, simultaneous rounds), the most direct measure of what a change pays.
//
// Express steps (bench/roles/express-steps.ts): an empty middleware layer; + claiming the request
// and listening for the end of its response; + report() per response, delivered to the fake; the
// real meterUsage middleware. Nest steps: a global interceptor that does nothing; @MeterUsage.
import path from 'node:path';
import { placement, pinTools } from './lib/placement';
import { Child } from './lib/proc';
import { simultaneous } from './lib/simultaneous';
import { median } from './lib/stats';
import type { FakeReady } from './roles/fake-stripe';
import { STEPS } from './roles/express-steps';
import type { Step } from './roles/express-steps';
import type { ServerKind, ServerReady, ServerVariant } from './roles/shared';
import { startBackgroundFake, startServer } from './scenarios/servers';

const CONNECTIONS = 5;
const WARMUP_SECONDS = 8;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function textFlag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

/** Simultaneous rounds of `b` against `a` after a warm-up: the median of b ÷ a throughput, and each one's CPU per request. */
async function headToHead(a: Child<ServerReady>, b: Child<ServerReady>, fake: Child<FakeReady>, rounds: number, seconds: number): Promise<{ ratio: number; cpuA: number; cpuB: number }> {
  // A fresh server next to one that is already warm: JIT and pools need several seconds under load.
  await simultaneous(a, b, CONNECTIONS, WARMUP_SECONDS);
  const ratios: number[] = [];
  const cpu: Array<[number, number]> = [];
  for (let i = 0; i < rounds; i += 1) {
    const { a: ra, b: rb } = await simultaneous(a, b, CONNECTIONS, seconds);
    ratios.push(rb.rps / ra.rps);
    cpu.push([ra.cpuUs, rb.cpuUs]);
    await fake.call('reset');
  }
  return { ratio: median(ratios), cpuA: median(cpu.map((c) => c[0])), cpuB: median(cpu.map((c) => c[1])) };
}

/** The steps of one server kind, each a way to start a server; the first is the baseline. */
function stepsOf(kind: ServerKind, fake: FakeReady, before: string | undefined): Array<[string, () => Promise<Child<ServerReady>>]> {
  const expressStep = (step: Step, expressFrom?: string) => (): Promise<Child<ServerReady>> =>
    Child.start<ServerReady>('roles/express-steps.ts', { cpus: placement.server, config: { step, fake, expressFrom } });
  if (kind === 'express' && before !== undefined) {
    return [
      ['bare', expressStep('bare')],
      ['before', expressStep('meterUsage', path.resolve(before))],
      ['meterUsage', expressStep('meterUsage')],
    ];
  }
  if (kind === 'express') return STEPS.map((step) => [step, expressStep(step)]);
  const variants: ServerVariant[] = ['bare', 'noop-interceptor', 'metered'];
  return variants.map((variant) => [variant === 'metered' ? '@MeterUsage' : variant, () => startServer(kind, variant, fake)]);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const kind = (args.find((arg, i) => !arg.startsWith('--') && !/^\d/.test(arg) && !args[i - 1]?.startsWith('--')) ?? 'express') as ServerKind;
  const rounds = flag('rounds', 6);
  const seconds = flag('seconds', 3);
  const before = textFlag('before');
  pinTools();
  const fake = await startBackgroundFake();
  const [baseline, ...steps] = stepsOf(kind, fake.ready, before);
  const bare = await baseline![1]();
  console.log(`${kind}: each step against bare, ${rounds} simultaneous rounds of ${seconds} s, ${CONNECTIONS} connections each; ${placement.describe}`);
  console.log('step               throughput vs bare      CPU/request (bare → step)');
  let previous = 1;
  const kept: Array<Child<ServerReady>> = [];
  for (const [name, start] of steps) {
    const server = await start();
    const { ratio, cpuA, cpuB } = await headToHead(bare, server, fake, rounds, seconds);
    const step = (ratio - previous) * 100;
    console.log(`${name.padEnd(17)}  ${ratio.toFixed(3)}× (${step >= 0 ? '+' : '−'}${Math.abs(step).toFixed(1)} pt)   ${cpuA.toFixed(0)} → ${cpuB.toFixed(0)} µs`);
    previous = ratio;
    if (before === undefined) await server.stop();
    else kept.push(server);
  }
  if (before !== undefined) {
    const [old, now] = kept;
    const { ratio, cpuA, cpuB } = await headToHead(old!, now!, fake, rounds, seconds);
    console.log(`meterUsage here ÷ before, head to head: ${ratio.toFixed(3)}×   CPU/request ${cpuA.toFixed(0)} → ${cpuB.toFixed(0)} µs`);
  }
  for (const server of kept) await server.stop();
  await bare.stop();
  await fake.stop();
}

void main();
