// The Nest controller for Stripe's meter error events: a class per configured path, around core's webhook handler.
import { MeterWebhookError } from '@metered/core';
import type { MeterErrorWebhook, MeterReporter } from '@metered/core';
import { Controller, Inject, Post, Req, Res } from '@nestjs/common';
import type { RawBodyRequest, Type } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import { SkipMetering } from './meter-usage.decorator';
import { METERING_CONFIG } from './metering.constants';
import type { ResolvedMeteringConfig } from './metering.options';

/** Core's webhook handler, built from the module's `webhook` options. */
export const METER_WEBHOOK = Symbol('@metered/nestjs:meter-webhook');

export const RAW_BODY_MISSING =
  'The raw request body is not available, so the Stripe-Signature cannot be checked: create the application with ' +
  'NestFactory.create(AppModule, { rawBody: true }) (Nest keeps the raw bytes of application/json requests only)';

type WebhookRequest = RawBodyRequest<{ headers: IncomingHttpHeaders }>;

/**
 * A controller receiving `v1.billing.meter.error_report_triggered` / `v1.billing.meter.no_meter_found` at `path`.
 * Nest reads a route's path from its decorators when the class is declared, so each path gets its own class.
 * It answers on both platforms through the HTTP adapter: 200 at once once the signature over `req.rawBody` holds,
 * 400 and nothing processed otherwise; every rejected event then reaches the reporter's `onError`.
 */
export function createMeterWebhookController(path: string): Type<unknown> {
  @Controller()
  // Stripe's deliveries are not usage: never billed, even with meterAllRoutes.
  @SkipMetering()
  class MeterWebhookController {
    constructor(
      @Inject(METER_WEBHOOK) private readonly webhook: MeterErrorWebhook,
      @Inject(METERING_CONFIG) private readonly config: ResolvedMeteringConfig,
      @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    ) {}

    @Post(path)
    receive(@Req() request: WebhookRequest, @Res() response: unknown): void {
      const adapter = this.adapterHost.httpAdapter;
      const raw = request.rawBody;
      // A body Nest parsed without keeping its bytes would have to be re-serialized, and would no longer match the signature.
      if (!Buffer.isBuffer(raw)) {
        const reporter: MeterReporter = this.config.reporter;
        reporter.handleError(new MeterWebhookError(undefined, RAW_BODY_MISSING));
        adapter.reply(response, { error: { code: 'ERR_METER_WEBHOOK_EVENT', message: RAW_BODY_MISSING } }, 400);
        return;
      }
      const answer = this.webhook.handle(raw, request.headers['stripe-signature']);
      adapter.reply(response, answer.body, answer.status);
    }
  }
  return MeterWebhookController;
}
