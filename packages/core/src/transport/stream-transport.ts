// The high-throughput path: a 15-minute session token, then up to 100 events per meter_event_stream request.
import { SESSION_REFRESH_MARGIN_MS } from '../config';
import type { ResolvedConfig } from '../config';
import { MeterUnauthorizedError, StripeApiError } from '../errors';
import type { StripeHttp } from './http';
import type { QueuedEvent } from '../store/queue';
import { registerSecret } from '../redact';
import { isKeyRefused, isSessionExpired } from '../delivery/retry';
import type { Transport } from './transport';
import { encodeStreamBody } from './wire';

const SESSION_PATH = '/v2/billing/meter_event_session';
const STREAM_PATH = '/v2/billing/meter_event_stream';
/** Re-authentications in a row for one batch before its failure is handed to the retry policy. */
const MAX_RENEWALS_PER_SEND = 2;

interface Session {
  readonly token: string;
  /** Epoch ms after which the reporter stops using the token (Stripe's expiry less a margin). */
  readonly renewAt: number;
  readonly forget: () => void;
}

function parseSession(body: unknown, now: number): { token: string; expiresAt: number } {
  const { authentication_token: token, expires_at: expiresAt } = (body ?? {}) as { authentication_token?: unknown; expires_at?: unknown };
  if (typeof token !== 'string' || token.length === 0) {
    throw new StripeApiError(502, 'api_error', 'invalid_session_response', 'meter_event_session answered without an authentication_token', undefined, true, undefined);
  }
  // V2 sends RFC 3339; a number is read as Unix seconds. Without either, assume Stripe's 15 minutes.
  const expires = typeof expiresAt === 'string' ? Date.parse(expiresAt) : typeof expiresAt === 'number' ? expiresAt * 1000 : Number.NaN;
  return { token, expiresAt: Number.isNaN(expires) ? now + 15 * 60_000 : expires };
}

/** The platform's own session, under the key no connected account id can take. */
const PLATFORM = '';

// Private fields: the session tokens and the config's key stay out of util.inspect and JSON.
// One session per account: a session is created with the account's Stripe-Context and its token
// carries that context (https://docs.stripe.com/context), so a batch only ever goes out under the
// token of the account all its events belong to (delivery never mixes accounts in a batch).
export class StreamTransport implements Transport {
  readonly #sessions = new Map<string, Session>();
  readonly #creating = new Map<string, Promise<Session>>();
  readonly #config: ResolvedConfig;
  readonly #http: StripeHttp;
  readonly #onSessionCreated: () => void;
  readonly #now: () => number;

  constructor(config: ResolvedConfig, http: StripeHttp, onSessionCreated: () => void, now: () => number = Date.now) {
    this.#config = config;
    this.#http = http;
    this.#onSessionCreated = onSessionCreated;
    this.#now = now;
  }

  async send(batch: readonly QueuedEvent[], idempotencyKey: string, signal: AbortSignal, sending: () => void): Promise<void> {
    const { customerKey, valueKey } = this.#config;
    const json = encodeStreamBody(batch, customerKey, valueKey);
    const context = batch[0]?.account;
    for (let renewals = 0; ; renewals += 1) {
      const session = await this.currentSession(context, signal);
      // Only now can the events reach Stripe: a session refused or unreachable never marks them attempted.
      sending();
      try {
        // The context travels with the token's requests too, as stripe-node sends stripeContext on every call of a client.
        await this.#http.post(this.#config.meterEventsOrigin, STREAM_PATH, { bearer: session.token, json, idempotencyKey, signal, context });
        return;
      } catch (error) {
        // A token refused for any reason (expired, or revoked with no code of its own) is replaced; one the
        // stream still refuses from a fresh session is the key's doing: the breaker holds the events
        // (MeterUnauthorizedError) instead of handing them to onError as refused.
        const refused = isKeyRefused(error);
        if (!refused && !isSessionExpired(error)) throw error;
        if (renewals >= MAX_RENEWALS_PER_SEND) throw refused ? new MeterUnauthorizedError(error.status, error) : error;
        this.invalidate(context, session);
      }
    }
  }

  /** Forgets every session token (on close). */
  dispose(): void {
    for (const session of this.#sessions.values()) session.forget();
    this.#sessions.clear();
  }

  /** The account's live session, created once however many batches ask for it at the same moment. */
  private currentSession(context: string | undefined, signal: AbortSignal): Promise<Session> {
    const key = context ?? PLATFORM;
    const session = this.#sessions.get(key);
    if (session !== undefined && this.#now() < session.renewAt) return Promise.resolve(session);
    let creating = this.#creating.get(key);
    if (creating === undefined) {
      creating = this.createSession(context, signal).finally(() => {
        this.#creating.delete(key);
      });
      this.#creating.set(key, creating);
    }
    return creating;
  }

  private async createSession(context: string | undefined, signal: AbortSignal): Promise<Session> {
    const key = context ?? PLATFORM;
    let body: unknown;
    try {
      body = await this.#http.post(this.#config.apiOrigin, SESSION_PATH, { bearer: this.#config.apiKey, signal, context });
    } catch (error) {
      // Refused here, the key itself is wrong: the reporter's breaker stops sending until it works.
      throw isKeyRefused(error) ? new MeterUnauthorizedError(error.status, error) : error;
    }
    const now = this.#now();
    const { token, expiresAt } = parseSession(body, now);
    this.#sessions.get(key)?.forget();
    const margin = Math.min(SESSION_REFRESH_MARGIN_MS, Math.max(0, (expiresAt - now) / 4));
    const session: Session = { token, renewAt: expiresAt - margin, forget: registerSecret(token) };
    this.#sessions.set(key, session);
    this.#onSessionCreated();
    return session;
  }

  // Only the session that failed is dropped: a batch that saw an old token expire must not
  // discard the fresh one another batch just created.
  private invalidate(context: string | undefined, session: Session): void {
    const key = context ?? PLATFORM;
    if (this.#sessions.get(key) === session) {
      this.#sessions.delete(key);
      session.forget();
    }
  }
}
