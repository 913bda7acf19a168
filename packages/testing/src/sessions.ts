// Meter event sessions: short-lived bearer tokens for the stream host, expiring on the fake's clock, each bound to one account.
import { randomBytes } from 'node:crypto';

import { randomId } from './random';
import type { MeterEventSessionObject } from './types';

interface Session {
  readonly id: string;
  /** The `Stripe-Context` the session was created under; undefined for the platform's own. */
  readonly account: string | undefined;
  expiresAt: number;
}

export type TokenState = 'valid' | 'expired' | 'unknown';

// Expired tokens are kept a while so they answer "expired" rather than "unknown", then dropped to bound memory.
const KEEP_EXPIRED_MS = 24 * 60 * 60 * 1000;

export class SessionStore {
  private readonly byToken = new Map<string, Session>();

  constructor(
    private readonly now: () => number,
    private readonly ttlMs: number,
    private readonly livemode: boolean,
  ) {}

  create(account?: string): MeterEventSessionObject {
    const created = this.now();
    this.prune(created);
    const token = `ek_${this.livemode ? 'live' : 'test'}_${randomBytes(32).toString('base64url')}`;
    const session: Session = { id: randomId('mes_'), account, expiresAt: created + this.ttlMs };
    this.byToken.set(token, session);
    return Object.freeze({
      id: session.id,
      object: 'v2.billing.meter_event_session',
      authentication_token: token,
      created: new Date(created).toISOString(),
      expires_at: new Date(session.expiresAt).toISOString(),
      livemode: this.livemode,
    });
  }

  check(token: string): TokenState {
    const session = this.byToken.get(token);
    if (session === undefined) return 'unknown';
    return this.now() < session.expiresAt ? 'valid' : 'expired';
  }

  /** The account a live or expired token was issued for (undefined: the platform, or not a token of this fake). */
  accountOf(token: string): string | undefined {
    return this.byToken.get(token)?.account;
  }

  /** True when the string is a token this fake issued (live or expired): used to refuse it on the API host. */
  isToken(token: string): boolean {
    return this.byToken.has(token);
  }

  expireAll(): number {
    const now = this.now();
    let live = 0;
    for (const session of this.byToken.values()) {
      if (now < session.expiresAt) live++;
      session.expiresAt = Math.min(session.expiresAt, now);
    }
    return live;
  }

  private prune(now: number): void {
    for (const [token, session] of this.byToken) {
      if (now - session.expiresAt > KEEP_EXPIRED_MS) this.byToken.delete(token);
    }
  }
}
