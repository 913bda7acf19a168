// The Express router for Stripe's meter error events: its own raw body parser, the signature check, 200 at once.
import { createMeterErrorWebhook } from '@metered/core';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { MeterErrorWebhookRouterOptions } from './types';

/** Where the router listens unless told otherwise. */
export const DEFAULT_WEBHOOK_PATH = '/stripe/meter-errors';
/** Stripe's meter error events are small; anything larger is not one. */
const MAX_WEBHOOK_BODY = '256kb';

/**
 * A router that receives Stripe's `v1.billing.meter.error_report_triggered` / `v1.billing.meter.no_meter_found`
 * events, verifies `Stripe-Signature` over the raw body, answers 200 at once (400 and nothing processed when the
 * signature fails), then fetches each thin event and reports every rejected event to the reporter's `onError` as
 * a `MeterRejectedEventError`. Mount it before any app-wide JSON parser; it reads `req.rawBody` when one ran first.
 *
 * @example
 * app.use(meterErrorWebhook({ reporter: metering.reporter, secrets: process.env.STRIPE_WEBHOOK_SECRET! }));
 * app.use(express.json());
 */
export function meterErrorWebhook(options: MeterErrorWebhookRouterOptions): Router {
  const webhook = createMeterErrorWebhook(options);
  const path = options.path ?? DEFAULT_WEBHOOK_PATH;
  const router = express.Router();
  router.post(path, express.raw({ type: () => true, limit: MAX_WEBHOOK_BODY }), function meterErrorWebhookHandler(req: Request, res: Response, next: NextFunction): void {
    // A parser that ran earlier consumed the stream; frameworks that keep the bytes put them on req.rawBody.
    const raw = (req as Request & { rawBody?: unknown }).rawBody;
    const body: unknown = Buffer.isBuffer(req.body) ? req.body : Buffer.isBuffer(raw) ? raw : undefined;
    try {
      const answer = webhook.handle(body as Buffer, req.headers['stripe-signature']);
      res.status(answer.status).json(answer.body);
    } catch (error) {
      next(error);
    }
  });
  return router;
}
