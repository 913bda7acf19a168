// The demo, in-process: every customer's usage recorded by the fake Stripe equals what should bill.
import { runDemo } from '../src/demo';

describe('express-basic demo', () => {
  it('reports matching expected and recorded totals for every customer', async () => {
    const lines: string[] = [];
    const result = await runDemo({ log: (line) => lines.push(line) });

    expect(result.ok).toBe(true);
    for (const row of result.rows) expect(row.recorded).toBe(row.expected);
    // The burst really exercises billing: every customer is billed on both meters.
    expect(result.rows.filter((row) => row.expected > 0)).toHaveLength(6);
    expect(result.rows.every((row) => row.customer.startsWith('cus_demo_'))).toBe(true);
    // …and the cases that must not bill.
    expect(result.metering.skipped).toMatchObject({ notBillable: expect.any(Number), noCustomer: 0, skippedRoute: expect.any(Number) });
    expect(result.metering.skipped.notBillable).toBeGreaterThan(20);
    expect(result.metering.skipped.skippedRoute).toBeGreaterThan(0);
    expect(result.metering.skipped.zeroValue).toBe(0);
    expect(result.metering.errors).toBe(0);
    expect(result.reporter).toMatchObject({ failed: 0, dropped: { total: 0 } });
    expect(result.close).toMatchObject({ dropped: 0, failed: 0 });
    expect(lines.join('\n')).toMatch(/^OK: every customer's recorded usage matches/m);
  });
});
