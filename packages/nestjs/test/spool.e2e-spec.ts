// MeteringModule.forRoot({ reporter: { …, spool } }) passes the spool to the reporter it creates: usage is counted in the spool's ledger on disk.
import 'reflect-metadata';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MeterReporter } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import request from 'supertest';
import { MeteringModule } from '../src';
import { fakeReporterOptions, METERS, startApp } from './fixtures';

let fake: FakeStripe;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-nest-spool-'));

beforeAll(async () => {
  fake = await startFakeStripe({ meters: METERS });
});
afterAll(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('MeteringModule.forRoot with a spool', () => {
  it('creates its reporter over the spool: the request is billed and counted in the file it names', async () => {
    const file = path.join(dir, 'meter.spool');
    const app = await startApp({ platform: 'express', metering: MeteringModule.forRoot({ reporter: fakeReporterOptions(fake, { spool: { path: file } }) }) });
    try {
      await request(app.getHttpServer()).get('/items').set('x-api-key', 'key_alice').expect(200);
    } finally {
      await app.close();
    }
    expect(fake.events().map((e) => [e.customer, e.eventName])).toEqual([['cus_alice', 'api_requests']]);
    // A later reporter over the same file reads the ledger the module's reporter wrote.
    const later = new MeterReporter({ ...fakeReporterOptions(fake), spool: { path: file } });
    try {
      expect(later.ledger({ from: 0, to: Date.now() + 3_600_000 })).toEqual([
        expect.objectContaining({ customerId: 'cus_alice', eventName: 'api_requests', accepted: { count: 1, value: '1' }, delivered: { count: 1, value: '1' } }),
      ]);
    } finally {
      await later.close();
    }
  });
});
