// Nest servers head to head, simultaneous rounds: what metering costs on its own, and what a change pays.
//
//   npx tsx --tsconfig bench/tsconfig.run.json bench/nest-ab.ts <nest-express|nest-fastify|express> A:B [A:B ...] [--rounds 6] [--seconds 3] [--before DIR] [--after DIR] [--fake normal]
//
// `express` runs bench/roles/express-server.ts instead, with its variants (bare, metered, metered-no-http,
// the peers) and no before/after builds.
//
// Each A:B pair names two servers of bench/roles/nest-server.ts and prints B ÷ A throughput (median of
// the simultaneous rounds, each round's ratio, each one's CPU per request and requests per second, and the
// two servers' CPU together in cores: below ~0.95 the core was not saturated and the ratio is not the
// ratio of CPU costs). Names: bare, noop-guard,
// noop-interceptor, metered, metered-no-http (the HTTP exchange with Stripe answered without a socket),
// metered-worker (deliveryThread 'worker', the worker on the server's core: the scheduler then shares
// that core between three threads, so read its CPU per request, not its throughput), metered-worker-spare
// (the worker moved to the tools' CPUs: the spare-core case; the server's own core is shared 1:1 again),
// metered-no-delivery (report() only counts: the adapter's own cost, without
// the reporter); `before` and `before-no-delivery` are the same two metered variants with the
// @metered/nestjs built in DIR (a directory whose node_modules holds that build, e.g. the committed
// code before a change, with @nestjs/* and @metered/core linked to this checkout's); `after` and
// `after-no-delivery` the same with the build in --after DIR (both sides built outside this checkout, so
// that what others change in it meanwhile is in neither).
//
// The fake Stripe runs at SCHED_IDLE (startBackgroundFake); `--fake normal` starts it at normal priority,
// as before the fifth session (NOTES.md, "The fake's CPU beside the load generator").
//
// e.g. bare:metered-no-delivery bare:metered before:metered
import { placement, pinTools } from './lib/placement';
import { Child } from './lib/proc';
import { simultaneous } from './lib/simultaneous';
import { median } from './lib/stats';
import type { FakeReady } from './roles/fake-stripe';
import type { ServerReady } from './roles/shared';
import { startBackgroundFake } from './scenarios/servers';

const CONNECTIONS = 5;
const WARMUP_SECONDS = 8;

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const kind = args[0];
  if (kind !== 'nest-express' && kind !== 'nest-fastify' && kind !== 'express') throw new Error('usage: nest-ab.ts <nest-express|nest-fastify|express> A:B [A:B ...]');
  const pairs = args.slice(1).filter((arg) => arg.includes(':')).map((arg) => arg.split(':') as [string, string]);
  const rounds = Number(option(args, 'rounds') ?? 6);
  const seconds = Number(option(args, 'seconds') ?? 3);
  const builds: Record<string, string | undefined> = { before: option(args, 'before'), after: option(args, 'after') };
  pinTools();
  const fake = await (option(args, 'fake') === 'normal' ? Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools }) : startBackgroundFake());
  const servers = new Map<string, Child<ServerReady>>();
  const server = async (name: string): Promise<Child<ServerReady>> => {
    const running = servers.get(name);
    if (running !== undefined) return running;
    const build = /^(before|after)(?:-|$)/.exec(name)?.[1];
    const nestjsFrom = build === undefined ? undefined : builds[build];
    if (build !== undefined && nestjsFrom === undefined) throw new Error(`${name} needs --${build} DIR`);
    const variant = build === undefined ? name : name.replace(/^(before|after)/, 'metered');
    if (kind === 'express' && build !== undefined) throw new Error('before/after builds are for the Nest servers (Express: breakdown.ts express --before DIR)');
    const started = await Child.start<ServerReady>(kind === 'express' ? 'roles/express-server.ts' : 'roles/nest-server.ts', { cpus: placement.server, config: { kind, variant, fake: fake.ready, nestjsFrom, workerCpus: placement.tools } });
    servers.set(name, started);
    return started;
  };
  console.log(`${kind}: ${rounds} simultaneous rounds of ${seconds} s, ${CONNECTIONS} connections each; ${placement.describe}`);
  for (const [aName, bName] of pairs) {
    const a = await server(aName);
    const b = await server(bName);
    // A fresh server next to one that is already warm: JIT and pools need several seconds under load.
    await simultaneous(a, b, CONNECTIONS, WARMUP_SECONDS);
    const ratios: number[] = [];
    const cpu: Array<[number, number]> = [];
    const busy: number[] = [];
    const rps: Array<[number, number]> = [];
    for (let i = 0; i < rounds; i += 1) {
      const round = await simultaneous(a, b, CONNECTIONS, seconds);
      ratios.push(round.b.rps / round.a.rps);
      cpu.push([round.a.cpuUs, round.b.cpuUs]);
      busy.push(round.a.cores + round.b.cores);
      rps.push([round.a.rps, round.b.rps]);
      await fake.call('reset');
    }
    const each = ratios.map((ratio) => ratio.toFixed(3)).join(' ');
    console.log(`${bName} ÷ ${aName}: ${median(ratios).toFixed(3)}× (rounds: ${each})   CPU/request ${median(cpu.map((c) => c[0])).toFixed(1)} → ${median(cpu.map((c) => c[1])).toFixed(1)} µs   req/s ${median(rps.map((r) => r[0])).toFixed(0)} → ${median(rps.map((r) => r[1])).toFixed(0)}   servers' CPU ${median(busy).toFixed(2)} cores`);
  }
  for (const running of servers.values()) await running.stop();
  await fake.stop();
}

void main();
