// meterUsage({ reporter: { …, spool } }) passes the spool to the reporter it creates: usage is counted in the spool's ledger on disk.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MeterReporter } from '@metered/core';
import { meterUsage } from '@metered/express';
import express from 'express';
import request from 'supertest';
import { ALICE, billed, buildApp, reporterOptionsFor, useMeteringSuite } from './helpers';

describe('meterUsage with a spool', () => {
  const suite = useMeteringSuite();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-express-spool-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates its reporter over the spool: the request is billed and counted in the file it names', async () => {
    const file = path.join(dir, 'meter.spool');
    const mw = meterUsage({ reporter: { ...reporterOptionsFor(suite.fake), spool: { path: file, durability: 'event' } } });
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.close();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    // A later reporter over the same file reads the ledger the middleware's reporter wrote.
    const later = new MeterReporter({ ...reporterOptionsFor(suite.fake), spool: { path: file } });
    try {
      expect(later.ledger({ from: 0, to: Date.now() + 3_600_000 })).toEqual([
        expect.objectContaining({ customerId: 'cus_alice', eventName: 'api_requests', accepted: { count: 1, value: '1' }, delivered: { count: 1, value: '1' } }),
      ]);
    } finally {
      await later.close();
    }
  });
});
