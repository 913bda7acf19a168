// Profiles a server variant under load and prints where its CPU time goes per request, by package and by function.
//
//   npx tsx --tsconfig bench/tsconfig.run.json bench/profile.ts <express|nest-express|nest-fastify> <bare|metered|VARIANT> [--seconds 10] [--save file]
//
// VARIANT is any variant the server's role knows (nest-server.ts: noop-guard, metered-no-delivery, …).
// The profile covers only the measured window, after a warm-up; --save keeps the .cpuprofile for
// Chrome DevTools or speedscope.
import { writeFileSync } from 'node:fs';
import { load } from './lib/load';
import { placement, pinTools } from './lib/placement';
import { Child } from './lib/proc';
import type { CpuProfile } from './lib/profiler';
import type { FakeReady } from './roles/fake-stripe';
import { startServer } from './scenarios/servers';
import type { ServerKind } from './scenarios/servers';
import type { ServerVariant } from './roles/shared';

/** Libraries only the metering code uses in these servers (the hello-world path needs none of them). */
const METERING_DEPENDENCIES = new Set(['on-finished', 'ee-first', 'undici']);
const NEUTRAL = new Set(['node internals', '(native)', '(garbage collector)']);
/** Reporter functions that run once per batch, not once per request: delivery's share is told apart. */
const DELIVERY_FUNCTIONS = new Set(['pump', 'deliver', 'withRetries', 'send', 'encodeStreamBody', 'post', 'acquire', 'tryTake', 'currentSession', 'withoutExpired', 'settle']);

/** Where a script belongs: a package under node_modules, one of ours, or Node itself. */
function owner(url: string, functionName: string): string {
  if (url === '') return functionName === '(garbage collector)' ? '(garbage collector)' : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const ours = /packages\/([^/]+)\//.exec(url);
  return ours ? `@metered/${ours[1]}` : (url.split('/').pop() ?? url);
}

/**
 * Self time per request, by package and by function; and metering's share: a sample is metering's
 * when the nearest frame above it that belongs to a library is ours (or undici, which only the
 * reporter uses here), and the application's when it is Express's, Nest's or Fastify's.
 */
export function summarize(profile: CpuProfile, requests: number, top = 20): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i += 1) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const label = (id: number): string => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const pkg = owner(url, functionName);
    return `${functionName || '(anonymous)'} ${pkg}${url ? `:${lineNumber + 1}` : ''}`;
  };
  const meteringFrame = (id: number): number | undefined => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { url, functionName } = byId.get(at)!.callFrame;
      const pkg = owner(url, functionName);
      if (pkg.startsWith('@metered/') || METERING_DEPENDENCIES.has(pkg)) return at;
      if (!NEUTRAL.has(pkg)) return undefined;
    }
    return undefined;
  };
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const metering = new Map<string, number>();
  let busy = 0;
  let meteringTotal = 0;
  let deliveryTotal = 0;
  const isDelivery = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { url, functionName } = byId.get(at)!.callFrame;
      if (owner(url, functionName) === 'undici' || (url.includes('packages/core/') && DELIVERY_FUNCTIONS.has(functionName))) return true;
    }
    return false;
  };
  const add = (map: Map<string, number>, key: string, us: number): void => {
    map.set(key, (map.get(key) ?? 0) + us);
  };
  for (const [id, us] of self) {
    const { functionName, url } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    busy += us;
    add(byPackage, owner(url, functionName), us);
    add(byFunction, label(id), us);
    const frame = meteringFrame(id);
    if (frame !== undefined) {
      meteringTotal += us;
      if (isDelivery(id)) deliveryTotal += us;
      add(metering, label(frame), us);
    }
  }
  const perRequest = (us: number): string => `${(us / requests).toFixed(1).padStart(6)} µs  ${((us / busy) * 100).toFixed(1).padStart(5)}%`;
  const table = (rows: Map<string, number>, n: number): string =>
    [...rows]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => `  ${perRequest(us)}  ${name}`)
      .join('\n');
  return [
    `CPU per request: ${(busy / requests).toFixed(1)} µs over ${requests} requests (garbage collection and native work included)`,
    `by package (self time):\n${table(byPackage, 12)}`,
    `by function (self time):\n${table(byFunction, top)}`,
    `metering: ${perRequest(meteringTotal)}, of which delivery (encoding and sending batches, handling their answers): ${perRequest(deliveryTotal)}`,
    `metering by the nearest metering frame:\n${table(metering, top)}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const [kind = 'express', variant = 'metered'] = process.argv.slice(2) as [ServerKind?, string?];
  const flag = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i === -1 ? undefined : process.argv[i + 1];
  };
  const seconds = Number(flag('seconds') ?? 10);
  pinTools();
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools });
  // Any variant the role knows; the role itself refuses one it does not.
  const server = await startServer(kind, variant as ServerVariant, fake.ready);
  await load(server.ready.url, { connections: 10, seconds: 8 });
  await server.call('profileStart');
  const result = await load(server.ready.url, { connections: 10, seconds });
  const profile = await server.call<CpuProfile>('profileStop');
  await server.stop();
  await fake.stop();
  console.log(`${kind} ${variant}: ${Math.round(result.rps)} req/s under the profiler`);
  const save = flag('save');
  if (save !== undefined) writeFileSync(save, JSON.stringify(profile));
  console.log(summarize(profile, result.ok));
}

if (require.main === module) void main();
