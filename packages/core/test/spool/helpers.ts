// Shared by the spool tests: temporary spool paths, events with every field, file sizes and child processes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { QueuedEvent } from '../../src/store/queue';

const REPO_ROOT = path.resolve(__dirname, '../../../..');

/**
 * Makes `store`'s commits fail as a disk I/O error does (SQLITE_IOERR) until `heal()`: the spool then
 * keeps its rows in memory and retries its writes every second.
 */
export function failWrites(store: object): { heal: () => void } {
  const internals = store as { writeAll: () => void };
  const write = internals.writeAll;
  let failing = true;
  internals.writeAll = () => {
    if (failing) throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
    write();
  };
  return {
    heal: () => {
      failing = false;
    },
  };
}
const dirs: string[] = [];

/** A fresh directory, removed after the suite. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-spool-'));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of dirs.splice(0)) {
    fs.chmodSync(dir, 0o755);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

export const NOW = Date.UTC(2026, 5, 15, 12, 30);

/** An event with every field set; `i` makes its identifier, value and (for odd i) dimensions distinct. */
export function event(i: number, overrides: Partial<QueuedEvent> = {}): QueuedEvent {
  return {
    eventName: 'api_requests',
    customerId: `cus_${i % 3}`,
    value: String(i + 1),
    timestamp: NOW - i,
    identifier: `evt_${i}`,
    dimensions: i % 2 === 1 ? { region: 'eu', plan: `p${i}` } : undefined,
    seq: i + 1,
    ...overrides,
  };
}

/** Bytes on disk of a spool: its file and SQLite's companions. */
export function spoolBytes(file: string): number {
  return ['', '-wal', '-shm', '-journal'].reduce((sum, suffix) => sum + (fs.existsSync(file + suffix) ? fs.statSync(file + suffix).size : 0), 0);
}

/** Whether this process can give up root's power to ignore file permissions (for read-only tests as root). */
export const runsAsRoot = process.getuid?.() === 0;

export interface ChildRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Complete lines a child printed (a SIGKILL can cut the last one short). */
export function lines(stdout: string): string[] {
  const end = stdout.lastIndexOf('\n');
  return end === -1 ? [] : stdout.slice(0, end).split('\n');
}

export interface ChildHandle {
  readonly done: Promise<ChildRun>;
  /** Resolves with the first line that satisfies `match`. */
  waitForLine(match: (line: string) => boolean): Promise<string>;
  kill(signal: NodeJS.Signals): void;
}

/** Where a child script lives and what it gets beyond this process's environment. */
export interface ChildOptions {
  /** The directory holding `children/` (default: this one's). */
  readonly dir?: string;
  readonly env?: Readonly<Record<string, string>>;
}

/** Starts `children/<name>.ts` under tsx, optionally behind a command prefix (`bash -c 'ulimit -f …'`, `setpriv …`). */
export function startChild(name: string, args: readonly string[], prefix: readonly string[] = [], options: ChildOptions = {}): ChildHandle {
  const script = path.join(options.dir ?? __dirname, 'children', `${name}.ts`);
  const command = [...prefix, process.execPath, '--import', 'tsx', script, ...args];
  const child = spawn(command[0]!, command.slice(1), { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const line of lines(stdout)) {
      for (let i = waiters.length - 1; i >= 0; i -= 1) {
        if (waiters[i]!.match(line)) waiters.splice(i, 1)[0]!.resolve(line);
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<ChildRun>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    done,
    waitForLine: (match) =>
      new Promise<string>((resolve, reject) => {
        const found = lines(stdout).find(match);
        if (found !== undefined) return resolve(found);
        waiters.push({ match, resolve });
        void done.then((run) => reject(new Error(`child ${name} exited (${run.code ?? run.signal}) before the line; stderr: ${run.stderr}`)));
      }),
    kill: (signal) => child.kill(signal),
  };
}
