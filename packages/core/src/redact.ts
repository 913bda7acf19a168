// Keeps API keys and session tokens out of every message metered writes.
// No leading word boundary: a key glued to a word (`apikey_sk_test_…`) must not escape. Over-matching a word
// that merely contains `sk_test_` costs a redacted word in a message, never a leaked key.
const SECRET_PATTERN = /(?:sk|rk|ek)_(?:test|live)_[A-Za-z0-9_-]+/g;
const BEARER_PATTERN = /\b(Bearer\s+)[^\s"',]+/gi;
const extraSecrets = new Set<string>();

/** Replaces every Stripe key, bearer credential and registered secret in `text` with `[REDACTED]`. */
export function redactSecrets(text: string): string {
  let out = text.replace(SECRET_PATTERN, '[REDACTED]').replace(BEARER_PATTERN, '$1[REDACTED]');
  for (const secret of extraSecrets) {
    if (out.includes(secret)) out = out.split(secret).join('[REDACTED]');
  }
  return out;
}

/**
 * Registers a secret that has no recognisable shape (a session token) so that messages never
 * carry it; returns a function that forgets it again.
 */
export function registerSecret(secret: string): () => void {
  if (secret.length < 8) return () => undefined;
  extraSecrets.add(secret);
  return () => extraSecrets.delete(secret);
}
