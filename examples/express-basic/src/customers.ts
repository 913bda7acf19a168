// Server-side API keys and the Stripe customer each one bills: clients only ever send the key.

/** The demo's keys. With real Stripe, set API_KEYS to keys of your own mapped to real customers. */
export const DEMO_API_KEYS: Readonly<Record<string, string>> = Object.freeze({
  demo_key_acme: 'cus_demo_acme',
  demo_key_globex: 'cus_demo_globex',
  demo_key_initech: 'cus_demo_initech',
});

/** Parses `key1=cus_123,key2=cus_456` (the API_KEYS variable). */
export function parseApiKeys(spec: string): Readonly<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const pair of spec.split(',')) {
    const [key, customer, ...rest] = pair.trim().split('=');
    if (!key || !customer || rest.length > 0 || !customer.startsWith('cus_')) {
      throw new Error(`API_KEYS must read key=cus_…,key=cus_…; "${pair.trim()}" does not`);
    }
    keys[key] = customer;
  }
  return Object.freeze(keys);
}
