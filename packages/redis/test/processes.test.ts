// Three processes reporting through one Redis under load, one SIGKILLed while it holds entries: the fake's deduplicated totals are exact.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startFakeStripe } from '@metered/testing';
import { describeRedis, onCleanup, rawClient, REDIS_URL, uniquePrefix, until } from './helpers';

const ROUNDS = 10;
const PER_ROUND = 200;

interface Child {
  readonly lines: string[];
  kill(signal: NodeJS.Signals): void;
  readonly exited: Promise<void>;
}

function startReplica(env: Record<string, string>, args: string[]): Child {
  const script = path.join(__dirname, 'children', 'reporter.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: path.resolve(__dirname, '../../..'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buffered = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { lines, kill: (signal) => child.kill(signal), exited };
}

describeRedis('three replicas, one SIGKILLed', () => {
  it("every event reported is billed exactly once: the dead replica's held entries are claimed and resent with their identifiers", async () => {
    // Each request takes 15 ms: delivery lasts as long as reporting, so the victim holds entries when it dies.
    const fake = await startFakeStripe({ meters: ['api_requests'], latencyMs: 15 });
    onCleanup(() => fake.close());
    const prefix = uniquePrefix();
    const env = { FAKE_API_KEY: fake.apiKey, FAKE_URL: fake.url, FAKE_METER_EVENTS_URL: fake.meterEventsUrl, REDIS_URL };
    const victim = startReplica(env, [prefix, 'victim', String(ROUNDS), '4']);
    const survivors = ['a', 'b'].map((name) => startReplica(env, [prefix, name, String(ROUNDS)]));
    await until(() => victim.lines.includes('reported'), 'the victim in Redis', 30_000);
    const consumer = victim.lines.find((l) => l.startsWith('consumer '))!.slice('consumer '.length);
    victim.kill('SIGKILL');
    await victim.exited;

    // The victim died holding entries (read, not acknowledged): these are what a claim must rescue.
    const raw = rawClient();
    const pending = (await raw.call('XPENDING', `{${prefix}}:events`, 'metered-delivery', '-', '+', 10_000, consumer)) as unknown[];
    expect(pending.length).toBeGreaterThan(0);

    await until(() => survivors.every((s) => s.lines.includes('reported')), 'the survivors reported', 60_000);
    const expected = 2 * ROUNDS * PER_ROUND + 4 * PER_ROUND;
    await until(() => new Set(fake.events().map((e) => e.identifier)).size >= expected, 'every event at the fake', 60_000);
    for (const s of survivors) s.kill('SIGTERM');
    await Promise.all(survivors.map((s) => s.exited));

    const events = fake.events();
    const ids = new Set(events.map((e) => e.identifier));
    expect(ids.size).toBe(expected);
    expect(events.length).toBe(expected);
    for (let round = 0; round < 4; round += 1) for (let i = 0; i < PER_ROUND; i += 1) expect(ids.has(`victim_${round}_${i}`)).toBe(true);
    expect(events.reduce((sum, e) => sum + BigInt(e.value), 0n)).toBe(BigInt(expected * 3));
    expect(((await raw.call('XPENDING', `{${prefix}}:events`, 'metered-delivery')) as [number])[0]).toBe(0);
  });
});
