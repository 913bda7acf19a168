// The meter check as the adapters run it at start-up: off, a logged warning per problem, or a refusal to start.
import { MeterConfigError } from '../errors';
import { MeterVerifyError } from './errors';
import type { VerifyMetersMode, VerifyMetersResult } from './types';
import type { MeterLogger } from '../types';

/** What the start-up check does unless told otherwise: warn, so a meter typo never takes an app down. */
export const DEFAULT_VERIFY_METERS_MODE: VerifyMetersMode = 'warn';
const MODES: readonly VerifyMetersMode[] = ['warn', 'fail', 'off'];

/** What the start-up check needs of a reporter. */
export interface VerifyingReporter {
  verifyMeters(options: { eventNames: readonly string[] }): Promise<VerifyMetersResult>;
  readonly log: MeterLogger;
}

/** Checks the `verifyMeters` option of an adapter. */
export function checkVerifyMetersMode(value: unknown, option = 'verifyMeters'): VerifyMetersMode {
  if (value === undefined) return DEFAULT_VERIFY_METERS_MODE;
  if (!MODES.includes(value as VerifyMetersMode)) throw new MeterConfigError(option, `must be one of ${MODES.map((m) => `'${m}'`).join(', ')}`);
  return value as VerifyMetersMode;
}

/**
 * Runs `verifyMeters` for `eventNames` in `mode`: `'off'` resolves undefined at once; `'warn'` logs
 * `WARN_METER_VERIFY_PROBLEM` per problem (and `WARN_METER_VERIFY_UNAVAILABLE` when Stripe cannot be read)
 * and resolves; `'fail'` rejects with `MeterVerifyError` listing every problem, or with Stripe's error.
 */
export async function verifyAtStartup(reporter: VerifyingReporter, eventNames: readonly string[], mode: VerifyMetersMode): Promise<VerifyMetersResult | undefined> {
  if (mode === 'off' || eventNames.length === 0) return undefined;
  let result: VerifyMetersResult;
  try {
    result = await reporter.verifyMeters({ eventNames });
  } catch (error) {
    if (mode === 'fail') throw error;
    const message = error instanceof Error ? error.message : String(error);
    reporter.log.warn({ code: 'WARN_METER_VERIFY_UNAVAILABLE', err: { message } }, `Could not check Stripe's meters at start-up: ${message}`);
    return undefined;
  }
  if (result.ok) return result;
  if (mode === 'fail') throw new MeterVerifyError(result.problems);
  for (const problem of result.problems) {
    reporter.log.warn({ code: 'WARN_METER_VERIFY_PROBLEM', problem: problem.code, eventName: problem.eventName }, problem.message);
  }
  return result;
}
