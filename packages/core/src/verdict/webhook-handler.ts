// The framework-neutral meter error webhook: verify the signature, answer at once, then fetch, map and report.
import { MeterConfigError } from '../errors';
import { registerSecret } from '../redact';
import { MeterWebhookError, MeterWebhookSignatureError } from './errors';
import type { MeterRejectedEventError } from './errors';
import { isThinEvent, rejectedEventsOf } from './meter-error-events';
import type { MappingContext } from './meter-error-events';
import { DEFAULT_WEBHOOK_TOLERANCE_SECONDS, verifyWebhookSignature } from './webhook-signature';
import type { MeterErrorWebhook, MeterErrorWebhookOptions, WebhookAnswer } from './types';

/** Stripe may deliver an event more than once; ids seen recently are acknowledged without reporting twice. */
const SEEN_EVENTS_MAX = 10_000;
const NOTHING: Promise<readonly MeterRejectedEventError[]> = Promise.resolve([]);

function refuse(code: string, message: string): WebhookAnswer {
  return { status: 400, body: { error: { code, message } }, processed: NOTHING };
}

/** Checks the secrets option: one or more non-empty strings. */
export function resolveWebhookSecrets(secrets: unknown, option = 'secrets'): readonly string[] {
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new MeterConfigError(option, 'must be the endpoint signing secret (whsec_…) or a non-empty array of them');
  }
  return Object.freeze([...(list as string[])]);
}

/**
 * A handler for Stripe's meter error events that the Express router and the Nest controller wrap.
 *
 * @example
 * const webhook = createMeterErrorWebhook({ reporter, secrets: process.env.STRIPE_WEBHOOK_SECRET! });
 * const { status, body } = webhook.handle(rawBody, req.headers['stripe-signature']);
 */
export function createMeterErrorWebhook(options: MeterErrorWebhookOptions): MeterErrorWebhook {
  if (options === null || typeof options !== 'object') throw new MeterConfigError('webhook', 'expects { reporter, secrets }');
  const { reporter } = options;
  if (reporter === null || typeof reporter !== 'object' || typeof reporter.readStripe !== 'function' || typeof reporter.handleError !== 'function') {
    throw new MeterConfigError('reporter', 'must be a MeterReporter');
  }
  const secrets = resolveWebhookSecrets(options.secrets);
  // Secrets have no recognisable shape for the redactor: register them so no message can carry one.
  for (const secret of secrets) registerSecret(secret);
  const toleranceSeconds = options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  if (typeof toleranceSeconds !== 'number' || !Number.isFinite(toleranceSeconds) || toleranceSeconds <= 0) {
    throw new MeterConfigError('toleranceSeconds', 'must be a positive number of seconds');
  }
  const now = options.now ?? Date.now;
  if (typeof now !== 'function') throw new MeterConfigError('now', 'must be a function returning epoch milliseconds');
  reporter.rememberIdentifiers?.();
  const context: MappingContext = {
    read: (path, account) => reporter.readStripe(path, account),
    lookup: (identifier) => reporter.lookupIdentifier(identifier),
    meterNames: new Map(),
  };
  const seen = new Set<string>();

  async function readBack(eventId: string, work: () => Promise<MeterRejectedEventError[]>): Promise<readonly MeterRejectedEventError[]> {
    try {
      const errors = await work();
      for (const error of errors) reporter.handleError(error);
      return errors;
    } catch (error) {
      // Acknowledged already, so Stripe will not resend: onError carries the id to fetch it again by hand.
      seen.delete(eventId);
      const reason = error instanceof Error ? error.message : String(error);
      reporter.handleError(new MeterWebhookError(eventId, `Stripe's event ${eventId} could not be read back (${reason}); fetch it with GET /v2/core/events/${eventId}`, error));
      return [];
    }
  }

  return {
    handle(rawBody, signatureHeader) {
      const body = typeof rawBody === 'string' ? rawBody : Buffer.isBuffer(rawBody) ? rawBody : undefined;
      if (body === undefined) {
        return refuse('ERR_METER_WEBHOOK_EVENT', 'The raw request body was not available: mount the webhook before any JSON body parser, or give it the raw bytes');
      }
      try {
        verifyWebhookSignature(body, signatureHeader, secrets, toleranceSeconds, now());
      } catch (error) {
        if (error instanceof MeterWebhookSignatureError) return refuse(error.code, error.message);
        throw error;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
      } catch {
        parsed = undefined;
      }
      if (!isThinEvent(parsed)) return refuse('ERR_METER_WEBHOOK_EVENT', 'The signed body is not a Stripe v2 event (object "v2.core.event")');
      if (seen.has(parsed.id)) return { status: 200, body: { received: true }, processed: NOTHING };
      if (seen.size >= SEEN_EVENTS_MAX) seen.delete(seen.values().next().value as string);
      seen.add(parsed.id);
      const event = parsed;
      return { status: 200, body: { received: true }, processed: readBack(event.id, () => rejectedEventsOf(event, context)) };
    },
  };
}
