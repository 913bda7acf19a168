// Child processes of the benchmarks: spawn a TypeScript entry, optionally pinned to CPUs, and call it over IPC.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
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

let tasksetWorks: boolean | undefined;

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

/** Pins every thread of this process to `cpus` (e.g. "1"); threads started later inherit it. */
export function pinSelf(cpus: string): void {
  if (canPin()) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

export interface ChildOptions {
  /** What the child reads with `childConfig()`. */
  config?: unknown;
  /** CPUs to pin the child to ("0", "0,1"); ignored where taskset is unavailable. */
  cpus?: string;
  /** Extra Node flags, e.g. --expose-gc or --cpu-prof. */
  nodeFlags?: readonly string[];
  /** Working directory (where --cpu-prof writes its profile). */
  cwd?: string;
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
   * Starts `entry` (a path relative to bench/) under the same TypeScript loader as this process and
   * resolves once the child has said it is ready.
   */
  static start<Ready>(entry: string, options: ChildOptions = {}): Promise<Child<Ready>> {
    const file = path.join(__dirname, '..', entry);
    const node = [...process.execArgv, ...(options.nodeFlags ?? []), file];
    const pinned = options.cpus !== undefined && canPin();
    // Through taskset, so that every thread Node starts (libuv pool, GC helpers) is born pinned.
    const proc = pinned
      ? spawn('taskset', ['-c', options.cpus!, process.execPath, ...node], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: childEnv(options), cwd: options.cwd })
      : spawn(process.execPath, node, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: childEnv(options), cwd: options.cwd });
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
