// Child processes of the benchmarks: spawn a role, optionally pinned to CPUs, and call it over IPC.
// A role runs as JS compiled by tsc under plain node, as an app runs in production: under tsx's loader,
// esbuild rewrites every ESM file that CJS code requires (all of Nest 12), which costs Nest's request
// path time it does not spend in production (NOTES.md, "tsx vs compiled roles").
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface CallMessage {
  kind: 'call';
  id: number;
  method: string;
  arg: unknown;
}
interface ReplyMessage {
  kind: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}
interface ReadyMessage {
  kind: 'ready';
  value: unknown;
}
type FromChild = ReplyMessage | ReadyMessage;

const CONFIG_ENV = 'METERED_BENCH_CONFIG';
const STOP_TIMEOUT_MS = 15_000;

/** bench/, whether this file runs from its source (bench/lib) or from the build (bench/dist/lib). */
const BENCH = __filename.endsWith('.js') ? path.join(__dirname, '..', '..') : path.join(__dirname, '..');
/** The roles compiled by tsc (gitignored, as every dist/). */
const BUILD = path.join(BENCH, 'dist');
const BUILD_CONFIG = path.join(BENCH, 'tsconfig.build.json');
/** Written after a build: sources older than it need none. */
const BUILD_STAMP = path.join(BUILD, '.built');
/** What the roles import: tsconfig.build.json compiles roles/*.ts and their imports, all under these. */
const BUILD_SOURCES = ['roles', 'lib', 'scenarios'];

let tasksetWorks: boolean | undefined;
let idleWorks: boolean | undefined;
let buildChecked = false;

/** Whether CPU pinning is available here (taskset from util-linux, and a kernel that lets us use it). */
export function canPin(): boolean {
  if (tasksetWorks === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
      tasksetWorks = true;
    } catch {
      tasksetWorks = false;
    }
  }
  return tasksetWorks;
}

/** Whether a child can be started at the SCHED_IDLE policy (chrt from util-linux; no privilege needed). */
export function canIdle(): boolean {
  if (idleWorks === undefined) {
    try {
      execFileSync('chrt', ['--idle', '0', 'true'], { stdio: 'ignore' });
      idleWorks = true;
    } catch {
      idleWorks = false;
    }
  }
  return idleWorks;
}

/** Pins every thread of this process to `cpus` (e.g. "1"); threads started later inherit it. */
export function pinSelf(cpus: string): void {
  if (canPin()) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

function newestSource(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newestSource(full));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, statSync(full).mtimeMs);
  }
  return latest;
}

/**
 * Compiles the roles into bench/dist with tsc, once per process and only when a source is newer than
 * the last build. Emit only (--noCheck): like tsx, a type error does not stop the bench; `npm run
 * typecheck` is where the bench's types are checked.
 */
export function buildRoles(): void {
  if (buildChecked) return;
  const stamp = existsSync(BUILD_STAMP) ? statSync(BUILD_STAMP).mtimeMs : 0;
  const newest = Math.max(statSync(BUILD_CONFIG).mtimeMs, ...BUILD_SOURCES.map((dir) => newestSource(path.join(BENCH, dir))));
  if (newest >= stamp) {
    const tsc = require.resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', BUILD_CONFIG, '--noCheck'], { stdio: 'inherit' });
    writeFileSync(BUILD_STAMP, `${new Date().toISOString()}\n`);
  }
  buildChecked = true;
}

/** The compiled file of `entry` (a .ts path relative to bench/), built first if needed. */
function compiled(entry: string): string {
  buildRoles();
  return path.join(BUILD, entry.replace(/\.ts$/, '.js'));
}

export interface ChildOptions {
  /** What the child reads with `childConfig()`. */
  config?: unknown;
  /** CPUs to pin the child to ("0", "0,1"); ignored where taskset is unavailable. */
  cpus?: string;
  /**
   * Starts the child at the SCHED_IDLE policy (`chrt --idle 0`), ignored where chrt cannot: on the CPUs
   * it shares with the load generator it runs only while the generator has nothing to do. For the fake
   * Stripe of a scenario where no measured response waits for it: there, its CPU time stands for Stripe's
   * own servers, which in production never run on the client's CPU, and at normal priority the fake's
   * handling of a 100-event batch (~1 ms) delays the load generator's reading of whatever response is
   * in flight at the time (NOTES.md, "The fake's CPU beside the load generator").
   */
  idle?: boolean;
  /** Extra Node flags, e.g. --expose-gc or --cpu-prof. */
  nodeFlags?: readonly string[];
  /** Working directory (where --cpu-prof writes its profile). */
  cwd?: string;
  /**
   * `node` (the default): the role's tsc build under plain node. `tsx`: the TypeScript source under
   * the same loader as this process (only to compare the two; see NOTES.md).
   */
  runtime?: 'node' | 'tsx';
}

/** A benchmark role running in its own process. */
export class Child<Ready = unknown> {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly proc: ChildProcess,
    readonly ready: Ready,
    private readonly name: string,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.on('message', (message: FromChild) => {
      if (message.kind !== 'reply') return;
      const call = this.pending.get(message.id);
      if (call === undefined) return;
      this.pending.delete(message.id);
      if (message.ok) call.resolve(message.value);
      else call.reject(new Error(`${this.name}: ${message.error ?? 'failed'}`));
    });
    proc.once('exit', (code, signal) => {
      for (const call of this.pending.values()) call.reject(new Error(`${this.name} exited (${signal ?? code}) during a call`));
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /**
   * Starts `entry` (a .ts path relative to bench/) and resolves once the child has said it is ready.
   * The child gets `nodeFlags` only, not this process's flags (tsx's loader), unless `runtime` is `tsx`.
   */
  static start<Ready>(entry: string, options: ChildOptions = {}): Promise<Child<Ready>> {
    const tsx = options.runtime === 'tsx';
    const file = tsx ? path.join(BENCH, entry) : compiled(entry);
    const node = [...(tsx ? process.execArgv : []), ...(options.nodeFlags ?? []), file];
    // Through taskset and chrt, so that every thread Node starts (libuv pool, GC helpers) is born pinned
    // and with the policy.
    const command = [
      ...(options.idle === true && canIdle() ? ['chrt', '--idle', '0'] : []),
      ...(options.cpus !== undefined && canPin() ? ['taskset', '-c', options.cpus] : []),
      process.execPath,
      ...node,
    ];
    const proc = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: childEnv(options), cwd: options.cwd });
    const name = path.basename(entry, '.ts');
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => reject(new Error(`${name} exited (${signal ?? code}) before it was ready`));
      proc.once('exit', onExit);
      proc.on('message', function onReady(message: FromChild) {
        if (message.kind !== 'ready') return;
        proc.off('message', onReady);
        proc.off('exit', onExit);
        resolve(new Child<Ready>(proc, message.value as Ready, name));
      });
    });
  }

  call<T = unknown>(method: string, arg?: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      const message: CallMessage = { kind: 'call', id, method, arg };
      this.proc.send(message);
    });
  }

  /** Asks the child to close and exit; kills it if it has not gone within 15 s. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
    try {
      await this.call('close');
    } catch {
      // It may exit before the reply arrives; the exit below is what matters.
    }
    await this.exited;
    clearTimeout(timer);
  }
}

function childEnv(options: ChildOptions): NodeJS.ProcessEnv {
  return { ...process.env, [CONFIG_ENV]: JSON.stringify(options.config ?? {}) };
}

/** The configuration the parent gave this child. */
export function childConfig<T>(): T {
  return JSON.parse(process.env[CONFIG_ENV] ?? '{}') as T;
}

/** Each handler types its own argument; the parent sends what that handler expects. */
export type Handlers = Record<string, (arg: never) => unknown>;

/**
 * Serves the parent's calls and announces `ready`. A `close` handler, if any, runs before the
 * process exits on the parent's `stop()`.
 */
export function serveParent(ready: unknown, handlers: Handlers): void {
  const send = (message: FromChild): void => {
    process.send?.(message);
  };
  process.on('message', (message: CallMessage) => {
    if (message.kind !== 'call') return;
    const handler = handlers[message.method];
    void (async () => {
      try {
        if (handler === undefined && message.method !== 'close') throw new Error(`no method ${message.method}`);
        const value = await handler?.(message.arg as never);
        send({ kind: 'reply', id: message.id, ok: true, value });
      } catch (error) {
        send({ kind: 'reply', id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
      if (message.method === 'close') process.disconnect();
    })();
  });
  // The parent went away (crashed, or stop() disconnected us): nothing left to serve.
  process.once('disconnect', () => process.exit(0));
  send({ kind: 'ready', value: ready });
}
