// Fixed-size request log (a ring buffer, so benchmarks cannot grow it without bound) with every credential redacted.
import type { LoggedRequest } from './types';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key']);
const KEY_KIND = /^([a-z]{2,5}_(?:test|live)_)/;

/** Keeps the credential's kind ("sk_test_", "ek_test_") so a test can see what was sent, never its secret part. */
export function redactCredential(value: string): string {
  const space = value.indexOf(' ');
  const scheme = space === -1 ? '' : value.slice(0, space + 1);
  const credential = space === -1 ? value : value.slice(space + 1).trim();
  const kind = scheme.toLowerCase() === 'bearer ' ? (KEY_KIND.exec(credential)?.[1] ?? '') : '';
  return `${scheme}${kind}[REDACTED]`;
}

/** Copies request headers with credentials redacted; any header that contains a secret is redacted whole. */
export function redactHeaders(headers: Record<string, string | string[] | undefined>, secrets: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(', ') : raw;
    if (SECRET_HEADERS.has(name)) out[name] = redactCredential(value);
    else if (secrets.some((s) => value.includes(s))) out[name] = '[REDACTED]';
    else out[name] = value;
  }
  return out;
}

/** Session objects carry their token in the body; everything else is logged as answered. */
export function redactResponse(body: unknown): unknown {
  if (typeof body === 'object' && body !== null && 'authentication_token' in body) {
    const token = (body).authentication_token;
    return { ...body, authentication_token: typeof token === 'string' ? redactCredential(`Bearer ${token}`).slice(7) : '[REDACTED]' };
  }
  return body;
}

export class RequestLog {
  private entries: Array<LoggedRequest | undefined>;
  private next = 0;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.entries = new Array<LoggedRequest | undefined>(capacity);
  }

  get enabled(): boolean {
    return this.capacity > 0;
  }

  push(entry: LoggedRequest): void {
    if (this.capacity === 0) return;
    this.entries[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
    if (this.size < this.capacity) this.size++;
  }

  list(): LoggedRequest[] {
    const out: LoggedRequest[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let i = 0; i < this.size; i++) {
      const entry = this.entries[(start + i) % this.capacity];
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }

  clear(): void {
    this.entries = new Array<LoggedRequest | undefined>(this.capacity);
    this.next = 0;
    this.size = 0;
  }
}
