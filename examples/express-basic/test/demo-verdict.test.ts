// The verdict demo, in-process: the misconfigured customer reaches onError through the webhook, and reconcile is clean.
import { runVerdictDemo } from '../src/demo-verdict';

it('catches the misconfigured customer through the signed webhook and reconciles cleanly', async () => {
  const lines: string[] = [];
  const result = await runVerdictDemo((line) => lines.push(line));
  expect(result.ok).toBe(true);
  expect(result.caught).toMatchObject({ code: 'ERR_METER_EVENT_REJECTED', customerId: 'cus_demo_acmee', stripeCode: 'meter_event_customer_not_found' });
  expect(result.caughtAfterMs).toBeLessThan(10_000);
  expect(result.reconcile.rows).toEqual([expect.objectContaining({ customerId: 'cus_demo_acme', expected: '3', stripe: '3', difference: '0' })]);
  expect(lines.join('\n')).toMatch(/^OK: the misconfigured customer was caught/m);
}, 20_000);
