// The `aggregate` and `instanceId` options, checked once into the aggregator's resolved config.
import { checkOptionKeys, show } from '../config';
import { MeterConfigError } from '../errors';
import { generateIdentifier } from '../identifier';
import { checkEventName } from '../intake/validate';
import type { AggregateOptions } from '../types';
import { checkAggregateFormula } from './aggregator';
import type { ResolvedAggregate } from './aggregator';

/** Longest window: the open window is held in memory, and a fold must stay inside Stripe's 35-day window. */
export const MAX_AGGREGATE_WINDOW_MS = 3_600_000;
export const DEFAULT_AGGREGATE_GRACE_MS = 1000;
const KNOWN_AGGREGATE_OPTIONS = new Set<string>(['windowMs', 'meters', 'graceMs']);
const INSTANCE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function instanceIdOf(value: unknown): string {
  if (value === undefined) return generateIdentifier();
  if (typeof value !== 'string' || !INSTANCE_ID.test(value)) {
    throw new MeterConfigError('instanceId', `must be 1–64 letters, digits, '.', '_', ':' or '-' (a pod name, a worker id), got ${show(value)}`);
  }
  return value;
}

/** Checks `aggregate` (and `instanceId`, which only it reads); undefined when aggregation is off. */
export function resolveAggregate(aggregate: AggregateOptions | undefined, instanceId: unknown): ResolvedAggregate | undefined {
  if (aggregate === undefined) {
    if (instanceId !== undefined) instanceIdOf(instanceId);
    return undefined;
  }
  checkOptionKeys(aggregate, 'aggregate', KNOWN_AGGREGATE_OPTIONS, (shown) => `must be an object with windowMs and meters, got ${shown}`);
  const { windowMs, meters, graceMs } = aggregate;
  if (typeof windowMs !== 'number' || !Number.isInteger(windowMs) || windowMs < 1 || windowMs > MAX_AGGREGATE_WINDOW_MS) {
    throw new MeterConfigError('aggregate.windowMs', `must be an integer from 1 to ${MAX_AGGREGATE_WINDOW_MS} (1 hour), got ${show(windowMs)}`);
  }
  if (meters === null || typeof meters !== 'object' || Array.isArray(meters) || Object.keys(meters).length === 0) {
    throw new MeterConfigError('aggregate.meters', "must name at least one meter with its formula, such as { api_requests: 'sum' }");
  }
  const names = new Set<string>();
  for (const [name, formula] of Object.entries(meters)) {
    try {
      checkEventName(name);
    } catch {
      throw new MeterConfigError(`aggregate.meters`, `keys must be meter event names of 1–100 characters, got ${show(name)}`);
    }
    checkAggregateFormula(`aggregate.meters.${name}`, formula);
    names.add(name);
  }
  const grace = graceMs ?? Math.min(DEFAULT_AGGREGATE_GRACE_MS, windowMs);
  if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > windowMs) {
    throw new MeterConfigError('aggregate.graceMs', `must be an integer from 0 to aggregate.windowMs (${windowMs}), got ${show(grace)}`);
  }
  return Object.freeze({ windowMs, graceMs: grace, meters: names, instanceId: instanceIdOf(instanceId) });
}
