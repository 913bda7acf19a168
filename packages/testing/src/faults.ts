// Fault injection: forced errors, connection resets, delays, parked responses and outages, counted or seeded-random.
import { FakeStripeConfigError } from './errors';
import { deriveSeed, seededRandom } from './random';
import { ENDPOINTS } from './config';
import type {
  DelayFault,
  FailFault,
  FakeEndpoint,
  FaultController,
  FaultHandle,
  FaultTarget,
  HeldRequests,
  OutageOptions,
  ResetFault,
} from './types';

interface Rule {
  readonly kind: 'fail' | 'reset' | 'delay' | 'hold';
  readonly endpoints: ReadonlySet<FakeEndpoint> | null;
  readonly fraction: number | null;
  readonly random: () => number;
  readonly afterProcessing: boolean;
  readonly waiters: Array<{ n: number; resolve: () => void }>;
  remaining: number;
  triggered: number;
  removed: boolean;
}

export interface FailRule extends Rule {
  readonly kind: 'fail';
  readonly spec: FailFault & { status: number };
}

interface ResetRule extends Rule {
  readonly kind: 'reset';
}

interface DelayRule extends Rule {
  readonly kind: 'delay';
  readonly ms: number;
}

interface HoldRule extends Rule {
  readonly kind: 'hold';
  readonly parked: Array<() => void>;
}

export type OutcomeRule = FailRule | ResetRule;

export interface ResolvedOutage {
  readonly mode: 'error' | 'reset';
  readonly status: number;
}

function fail(option: string, accepted: string, got: unknown): never {
  throw new FakeStripeConfigError(`faults: option "${option}" must be ${accepted}; got ${String(got)}.`);
}

function checkStatus(option: string, status: unknown): number {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
    fail(option, 'an HTTP error status from 400 to 599', status);
  }
  return status;
}

export class Faults implements FaultController {
  private rules: Rule[] = [];
  private created = 0;
  private outageState: ResolvedOutage | null = null;
  // Pending delays, so clear() and close() can cut them short instead of leaving sockets waiting.
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly seed: number,
    private readonly expire: () => number,
  ) {}

  fail(fault: FailFault = {}): FaultHandle {
    const status = checkStatus('status', fault.status ?? 500);
    if (fault.retryAfter !== undefined && (!Number.isInteger(fault.retryAfter) || fault.retryAfter < 0)) {
      fail('retryAfter', 'a non-negative integer (seconds)', fault.retryAfter);
    }
    const rule: FailRule = { ...this.base('fail', fault, 1, fault.afterProcessing ?? false), kind: 'fail', spec: { ...fault, status } };
    return this.install(rule);
  }

  resetConnection(fault: ResetFault = {}): FaultHandle {
    const rule: ResetRule = { ...this.base('reset', fault, 1, fault.afterProcessing ?? false), kind: 'reset' };
    return this.install(rule);
  }

  delay(fault: DelayFault): FaultHandle {
    if (typeof fault?.ms !== 'number' || !Number.isFinite(fault.ms) || fault.ms < 0) fail('ms', 'a non-negative number of milliseconds', fault?.ms);
    const rule: DelayRule = { ...this.base('delay', fault, 1, true), kind: 'delay', ms: fault.ms };
    return this.install(rule);
  }

  hold(target: FaultTarget = {}): HeldRequests {
    const rule: HoldRule = { ...this.base('hold', target, Number.POSITIVE_INFINITY, true), kind: 'hold', parked: [] };
    const release = (): void => {
      rule.removed = true;
      this.rules = this.rules.filter((r) => r !== rule);
      for (const resume of rule.parked.splice(0)) resume();
    };
    const handle = this.install(rule);
    return {
      get triggered() {
        return handle.triggered;
      },
      reached: (n?: number) => handle.reached(n),
      remove: release,
      release,
    };
  }

  expireSessions(): number {
    return this.expire();
  }

  outage(state: boolean | OutageOptions): void {
    if (state === false) {
      this.outageState = null;
      return;
    }
    const options = state === true ? {} : state;
    const mode = options.mode ?? 'error';
    if (mode !== 'error' && mode !== 'reset') fail('mode', "'error' or 'reset'", mode);
    this.outageState = Object.freeze({ mode, status: checkStatus('status', options.status ?? 503) });
  }

  clear(): void {
    for (const rule of this.rules) {
      rule.removed = true;
      if (rule.kind === 'hold') for (const resume of (rule as HoldRule).parked.splice(0)) resume();
    }
    for (const wake of [...this.sleepers]) wake();
    this.rules = [];
    this.created = 0;
    this.outageState = null;
  }

  /** The outage in force, if any. */
  currentOutage(): ResolvedOutage | null {
    return this.outageState;
  }

  /** The first error or reset rule that fires for this request in this phase. */
  outcome(endpoint: FakeEndpoint | null, afterProcessing: boolean): OutcomeRule | null {
    if (this.rules.length === 0) return null;
    for (const rule of this.rules) {
      if ((rule.kind === 'fail' || rule.kind === 'reset') && rule.afterProcessing === afterProcessing && this.fires(rule, endpoint)) {
        return rule as OutcomeRule;
      }
    }
    return null;
  }

  /** Total extra delay for this request, from every delay rule that fires. */
  delayMs(endpoint: FakeEndpoint | null): number {
    let total = 0;
    for (const rule of this.rules) if (rule.kind === 'delay' && this.fires(rule, endpoint)) total += (rule as DelayRule).ms;
    return total;
  }

  /** A promise that resolves when the request may be answered, or null when no hold applies. */
  parkIfHeld(endpoint: FakeEndpoint | null): Promise<void> | null {
    for (const rule of this.rules) {
      if (rule.kind !== 'hold' || !this.fires(rule, endpoint)) continue;
      const hold = rule as HoldRule;
      return new Promise<void>((resolve) => hold.parked.push(resolve));
    }
    return null;
  }

  /** Waits `ms` of real time, or less if clear() runs first. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  private base(kind: Rule['kind'], target: FaultTarget, defaultCount: number, afterProcessing: boolean): Rule {
    let endpoints: ReadonlySet<FakeEndpoint> | null = null;
    if (target.endpoint !== undefined) {
      const list = typeof target.endpoint === 'string' ? [target.endpoint] : [...target.endpoint];
      if (list.length === 0 || list.some((e) => !ENDPOINTS.includes(e))) fail('endpoint', `one or more of ${ENDPOINTS.join(', ')}`, list.join(','));
      endpoints = new Set(list);
    }
    const fraction = target.fraction ?? null;
    if (fraction !== null && (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1))) fail('fraction', 'a number in (0, 1]', fraction);
    const count = target.count ?? (fraction === null ? defaultCount : Number.POSITIVE_INFINITY);
    if (count !== Number.POSITIVE_INFINITY && (!Number.isInteger(count) || count < 1)) fail('count', 'a positive integer', count);
    return {
      kind,
      endpoints,
      fraction,
      random: seededRandom(deriveSeed(this.seed, this.created++)),
      afterProcessing,
      waiters: [],
      remaining: count,
      triggered: 0,
      removed: false,
    };
  }

  private install(rule: Rule): FaultHandle {
    this.rules.push(rule);
    return {
      get triggered() {
        return rule.triggered;
      },
      reached: (n = 1) => (rule.triggered >= n ? Promise.resolve() : new Promise<void>((resolve) => rule.waiters.push({ n, resolve }))),
      remove: () => {
        rule.removed = true;
        this.rules = this.rules.filter((r) => r !== rule);
      },
    };
  }

  private fires(rule: Rule, endpoint: FakeEndpoint | null): boolean {
    if (rule.removed || rule.remaining <= 0) return false;
    if (rule.endpoints !== null && (endpoint === null || !rule.endpoints.has(endpoint))) return false;
    // Draw only for requests the rule targets, so the pattern depends on the seed and the matching traffic alone.
    if (rule.fraction !== null && rule.random() >= rule.fraction) return false;
    rule.triggered++;
    rule.remaining--;
    for (let i = rule.waiters.length - 1; i >= 0; i--) {
      const waiter = rule.waiters[i]!;
      if (rule.triggered >= waiter.n) {
        rule.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
    if (rule.remaining <= 0 && rule.kind !== 'hold') this.rules = this.rules.filter((r) => r !== rule);
    return true;
  }
}
