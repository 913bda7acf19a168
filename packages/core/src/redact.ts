// Keeps API keys and session tokens out of every message metered writes.
const SECRET_PATTERN = /\b(?:sk|rk|ek)_(?:test|live)_[A-Za-z0-9_-]+/g;
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
