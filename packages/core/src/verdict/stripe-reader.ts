// Read-only access to Stripe for the verdict calls that run without a reporter (reconcile, the CLI).
import { DEFAULT_API_BASE_URL, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_STRIPE_VERSION } from '../config';
import { MeterConfigError } from '../errors';
import { registerSecret } from '../redact';
import { StripeHttp } from '../transport/http';
import type { StripeConnection, StripeReader } from './types';

const KEY_PATTERN = /^(sk|rk)_(test|live)_[A-Za-z0-9_-]+$/;
const NO_PACING = { beforeRequest: (): Promise<void> => Promise.resolve(), afterResponse: (): void => undefined };

/** A reader over its own connection; `close()` releases the private agent. */
export interface OwnedStripeReader {
  readonly read: StripeReader;
  close(): Promise<void>;
}

/** Checks a connection once and opens a reader; throws `MeterConfigError` naming the bad field. */
export function openStripeReader(connection: StripeConnection, option = 'apiKey'): OwnedStripeReader {
  const { apiKey } = connection;
  if (typeof apiKey !== 'string' || !KEY_PATTERN.test(apiKey)) throw new MeterConfigError(option, 'must be a Stripe secret key (sk_… or rk_…)');
  const forget = registerSecret(apiKey);
  let origin: string;
  try {
    origin = new URL(connection.apiBaseUrl ?? DEFAULT_API_BASE_URL).origin;
  } catch {
    throw new MeterConfigError('apiBaseUrl', `must be an absolute URL, got ${JSON.stringify(connection.apiBaseUrl)}`);
  }
  const requestTimeoutMs = connection.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) throw new MeterConfigError('requestTimeoutMs', 'must be a positive integer of milliseconds');
  const http = new StripeHttp({ dispatcher: connection.dispatcher, concurrency: 1, stripeVersion: DEFAULT_STRIPE_VERSION, requestTimeoutMs }, NO_PACING);
  return {
    read: (pathAndQuery) => http.get(origin, pathAndQuery, { bearer: apiKey }),
    close: async () => {
      await http.close();
      forget();
    },
  };
}

/** Every item of a v1 list, following `starting_after` cursors. */
export async function listAll<T extends { id: string }>(read: StripeReader, path: string, query: Record<string, string> = {}): Promise<T[]> {
  const items: T[] = [];
  let after: string | undefined;
  for (;;) {
    const params = new URLSearchParams({ ...query, limit: '100', ...(after === undefined ? {} : { starting_after: after }) });
    const page = (await read(`${path}?${params.toString()}`)) as { data?: T[]; has_more?: boolean } | undefined;
    const data = Array.isArray(page?.data) ? page.data : [];
    items.push(...data);
    if (page?.has_more !== true || data.length === 0) return items;
    after = data[data.length - 1]!.id;
  }
}
