// Identifiers that cannot collide across processes, made without crypto work per event.
import { createHash, randomBytes, randomUUID } from 'node:crypto';

// 96 random bits per process: two processes share a prefix with negligible probability, and within
// a process the counter makes every identifier distinct.
const PROCESS_PREFIX = `mtr_${randomBytes(12).toString('base64url')}_`;
let counter = 0;

/** A new identifier, unique across processes (`mtr_<random>_<counter>`, under 40 characters). */
export function generateIdentifier(): string {
  counter += 1;
  return PROCESS_PREFIX + counter.toString(36);
}

/**
 * A stable identifier derived from parts (customer, event name, a client's idempotency key), so
 * that the same parts always give the same identifier and different parts never collide in practice.
 */
export function deriveIdentifier(...parts: readonly string[]): string {
  return `mtr_d_${digestOf(parts)}`;
}

/**
 * Starts the identifier of every fold of pre-aggregated events: a fold handed back through
 * `onError` or `onDrop` and reported again is sent as it is, never folded into a new one (whose new
 * identifier Stripe could not tell from the first, so the usage would be billed twice).
 */
const FOLD_PREFIX = 'mtr_fold_';

/** The identifier of one fold, derived from its parts like `deriveIdentifier()`'s. */
export function deriveFoldIdentifier(...parts: readonly string[]): string {
  return FOLD_PREFIX + digestOf(parts);
}

/** Whether `identifier` names a fold (`deriveFoldIdentifier()`): an event already aggregated. */
export function isFoldIdentifier(identifier: unknown): boolean {
  return typeof identifier === 'string' && identifier.startsWith(FOLD_PREFIX);
}

function digestOf(parts: readonly string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
    hash.update(`${part.length}:${part}`);
  }
  return hash.digest('base64url');
}

/** A fresh idempotency key for one logical request (kept across its retries). */
export function newIdempotencyKey(): string {
  // randomUUID draws from a pooled entropy buffer; randomBytes(16) went to OpenSSL on every batch and
  // showed up at ~90 µs per batch in the benchmark's CPU profile (docs/BENCHMARKS.md).
  return `metered-${randomUUID().replaceAll('-', '')}`;
}
