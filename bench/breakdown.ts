// What each step of metering costs a hello-world server, each step measured against bare with simultaneous rounds.
//
//   npx tsx --tsconfig bench/tsconfig.run.json bench/breakdown.ts [express|nest-express|nest-fastify] [--rounds 6] [--seconds 3]
//
// Express steps (bench/roles/express-steps.ts): an empty middleware layer; + claiming the request
// and listening for the end of its response; + report() per response, delivered to the fake; the
// real meterUsage middleware. Nest steps: a global interceptor that does nothing; @MeterUsage.
import { placement, pinTools } from './lib/placement';
import { Child } from './lib/proc';
import { simultaneous } from './lib/simultaneous';
import { median } from './lib/stats';
import type { FakeReady } from './roles/fake-stripe';
import { STEPS } from './roles/express-steps';
import type { ServerKind, ServerReady, ServerVariant } from './roles/shared';
import { startServer } from './scenarios/servers';

const CONNECTIONS = 5;
const WARMUP_SECONDS = 8;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

/** The steps of one server kind, each a way to start a server; the first is the baseline. */
function stepsOf(kind: ServerKind, fake: FakeReady): Array<[string, () => Promise<Child<ServerReady>>]> {
  if (kind === 'express') {
    return STEPS.map((step) => [step, () => Child.start<ServerReady>('roles/express-steps.ts', { cpus: placement.server, config: { step, fake } })]);
  }
  const variants: ServerVariant[] = ['bare', 'noop-interceptor', 'metered'];
  return variants.map((variant) => [variant === 'metered' ? '@MeterUsage' : variant, () => startServer(kind, variant, fake)]);
}

async function main(): Promise<void> {
  const kind = (process.argv.slice(2).find((arg) => !arg.startsWith('--') && !/^\d/.test(arg)) ?? 'express') as ServerKind;
  const rounds = flag('rounds', 6);
  const seconds = flag('seconds', 3);
  pinTools();
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools });
  const [baseline, ...steps] = stepsOf(kind, fake.ready);
  const bare = await baseline![1]();
  console.log(`${kind}: each step against bare, ${rounds} simultaneous rounds of ${seconds} s, ${CONNECTIONS} connections each; ${placement.describe}`);
  console.log('step               throughput vs bare      CPU/request (bare → step)');
  let previous = 1;
  for (const [name, start] of steps) {
    const server = await start();
    // A fresh server next to a bare one that is already warm: JIT and pools need several seconds under load.
    await simultaneous(bare, server, CONNECTIONS, WARMUP_SECONDS);
    const ratios: number[] = [];
    const cpu: Array<[number, number]> = [];
    for (let i = 0; i < rounds; i += 1) {
      const { a, b } = await simultaneous(bare, server, CONNECTIONS, seconds);
      ratios.push(b.rps / a.rps);
      cpu.push([a.cpuUs, b.cpuUs]);
      await fake.call('reset');
    }
    const ratio = median(ratios);
    const step = (ratio - previous) * 100;
    console.log(
      `${name.padEnd(17)}  ${ratio.toFixed(3)}× (${step >= 0 ? '+' : '−'}${Math.abs(step).toFixed(1)} pt)   ${median(cpu.map((c) => c[0])).toFixed(0)} → ${median(cpu.map((c) => c[1])).toFixed(0)} µs`,
    );
    previous = ratio;
    await server.stop();
  }
  await bare.stop();
  await fake.stop();
}

void main();
