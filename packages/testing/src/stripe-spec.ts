// Checks recorded traffic against Stripe's official OpenAPI definitions (the excerpt shipped in spec/) with ajv.
import fs from 'node:fs';
import path from 'node:path';

import Ajv from 'ajv';
import type { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

import { FakeStripeError } from './errors';
import type { FakeStripe, LoggedRequest } from './types';

/**
 * Stripe's OpenAPI excerpt as this package ships it (`spec/` beside `src/` and `dist/`, so the same
 * path holds in this repository and in an installed app); `STRIPE_SPEC_PATH` overrides it.
 * `spec/README.md` names its source commit and API version.
 */
export const SPEC_PATH = process.env.STRIPE_SPEC_PATH ?? path.resolve(__dirname, '../spec/stripe-v2-meter-events.openapi.json');
const SCHEMA_BASE = 'https://stripe-spec.local/schemas/';

/**
 * The excerpt leaves out `api_errors` (the v1 error object). This is its top level as Stripe publishes it:
 * `type` is required and one of four values; `code`, `message`, `param` and `doc_url` are optional strings.
 */
const API_ERRORS = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', enum: ['api_error', 'card_error', 'idempotency_error', 'invalid_request_error'] },
    code: { type: 'string', maxLength: 5000 },
    doc_url: { type: 'string', maxLength: 5000 },
    message: { type: 'string', maxLength: 40000 },
    param: { type: 'string', maxLength: 5000 },
  },
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * OpenAPI 3.0 schema → JSON Schema for ajv: drop `x-*` extensions, turn `nullable` into a null type, point
 * `$ref`s at registered ids, and read `oneOf` as `anyOf` (see below).
 */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-') || key === 'nullable') continue;
    if (key === '$ref' && typeof value === 'string') out.$ref = value.replace('#/components/schemas/', SCHEMA_BASE);
    // The spec lists each specific v2 error (e.g. `v2.error.no_meter`) *and* the generic `v2.error` in a oneOf;
    // every specific error also matches the generic one, so a literal oneOf rejects every real error body.
    else if (key === 'oneOf') out.anyOf = toJsonSchema(value);
    else out[key] = toJsonSchema(value);
  }
  if (node.nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    if (Array.isArray(out.enum)) out.enum = [...out.enum, null];
  }
  return out;
}

interface Operation {
  method: string;
  /** Path template as in the spec, e.g. `/v1/billing/meters/{id}/event_summaries`. */
  template: string;
  pattern: RegExp;
  request: ValidateFunction | null;
  takesJsonBody: boolean;
  query: ValidateFunction | null;
  integerParams: string[];
  ok: ValidateFunction;
  error: ValidateFunction;
  /** The specific errors of the oneOf, by the code they fix: a body with that code must match that schema. */
  specificErrors: Map<string, ValidateFunction>;
}

/** What `specProblems` and `trafficProblems` check besides every response. */
export interface SpecCheckOptions {
  /**
   * Check the body of every request, not only of those the fake accepted: for testing a client,
   * which must never send an off-spec request, where tests of the fake send some on purpose.
   * @default false
   */
  allRequests?: boolean;
}

export interface SpecValidator {
  readonly operations: readonly Operation[];
  find(method: string, path: string): Operation | undefined;
}

const cache = new Map<string, SpecValidator>();

/** Compiles every operation of an OpenAPI file of Stripe's once per process. */
export function loadStripeSpec(specPath: string = SPEC_PATH): SpecValidator {
  const known = cache.get(specPath);
  if (known !== undefined) return known;
  if (!fs.existsSync(specPath)) {
    throw new FakeStripeError('ERR_FAKE_STRIPE_SPEC_MISSING', `Stripe's OpenAPI excerpt is missing: expected ${specPath} (the spec/ folder of @metered/testing, or the path given / STRIPE_SPEC_PATH).`);
  }
  let spec: { paths: Record<string, Record<string, Record<string, Json>>>; components: { schemas: Record<string, Json> } };
  try {
    spec = JSON.parse(fs.readFileSync(specPath, 'utf8')) as typeof spec;
    if (typeof spec?.paths !== 'object' || typeof spec?.components?.schemas !== 'object') throw new Error('it has no paths or components.schemas');
  } catch (error) {
    throw new FakeStripeError('ERR_FAKE_STRIPE_SPEC_INVALID', `${specPath} is not an OpenAPI document of Stripe's: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true });
  addFormats(ajv);
  ajv.addFormat('unix-time', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  for (const [name, schema] of Object.entries({ ...spec.components.schemas, api_errors: API_ERRORS as Json })) {
    ajv.addSchema(toJsonSchema(schema) as object, `${SCHEMA_BASE}${name}`);
  }
  const compile = (schema: Json | undefined): ValidateFunction | null =>
    schema === undefined ? null : ajv.compile(toJsonSchema(schema) as object);
  const jsonSchema = (content: Json | undefined, type: string): Json | undefined => {
    const media = (content as Record<string, Record<string, Json>> | undefined)?.[type];
    return media?.schema;
  };

  const operations: Operation[] = [];
  for (const [template, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const requestBody = op.requestBody as { content?: Json } | undefined;
      const responses = op.responses as Record<string, { content?: Json }>;
      const params = ((op.parameters ?? []) as Array<{ name: string; in: string; required?: boolean; schema: Json }>).filter(
        (p) => p.in === 'query' && p.name !== 'expand',
      );
      const query =
        method === 'get'
          ? compile({
              type: 'object',
              additionalProperties: false,
              properties: Object.fromEntries(params.map((p) => [p.name, p.schema])),
              required: params.filter((p) => p.required === true).map((p) => p.name),
            })
          : null;
      const specificErrors = new Map<string, ValidateFunction>();
      const alternatives = (jsonSchema(responses.default?.content, 'application/json') as { oneOf?: Array<{ $ref: string }> } | undefined)?.oneOf ?? [];
      for (const { $ref } of alternatives) {
        const name = $ref.replace('#/components/schemas/', '');
        const codes = (spec.components.schemas[name] as { properties?: { error?: { properties?: { code?: { enum?: string[] } } } } })
          .properties?.error?.properties?.code?.enum;
        for (const code of codes ?? []) specificErrors.set(code, ajv.getSchema(`${SCHEMA_BASE}${name}`)!);
      }
      const okSchema = jsonSchema(responses['200']?.content, 'application/json');
      const errorSchema = jsonSchema(responses.default?.content, 'application/json');
      if (okSchema === undefined || errorSchema === undefined) throw new Error(`spec: ${method} ${template} lacks a 200 or default response`);
      operations.push({
        method: method.toUpperCase(),
        template,
        pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
        request: compile(jsonSchema(requestBody?.content, 'application/json')),
        takesJsonBody: jsonSchema(requestBody?.content, 'application/json') !== undefined,
        query,
        integerParams: params.filter((p) => (p.schema as { type?: string }).type === 'integer').map((p) => p.name),
        ok: compile(okSchema)!,
        error: compile(errorSchema)!,
        specificErrors,
      });
    }
  }
  const validator: SpecValidator = {
    operations,
    find: (method, p) => operations.find((o) => o.method === method && o.pattern.test(p)),
  };
  cache.set(specPath, validator);
  return validator;
}

function errorsOf(validate: ValidateFunction): string {
  return JSON.stringify(validate.errors);
}

/** Problems found in one logged exchange; empty when it conforms. */
export function specProblems(entry: LoggedRequest, spec: SpecValidator = loadStripeSpec(), options: SpecCheckOptions = {}): string[] {
  const problems: string[] = [];
  const where = `${entry.method} ${entry.host}${entry.path} → ${entry.status}`;
  // Routes absent from the spec (404s for made-up paths) still answer in Stripe's shape: check against the generic errors.
  const op = spec.find(entry.method, entry.path) ?? spec.find('POST', entry.path) ?? spec.find('GET', entry.path);
  if (op === undefined || entry.status === null || entry.response === undefined) return problems;
  // A client under test must never send what the spec rejects, whatever the answer.
  if (options.allRequests === true && entry.status !== 200 && op.request !== null && entry.body !== undefined && !op.request(entry.body)) {
    problems.push(`${where}: sent an off-spec request: ${errorsOf(op.request)}`);
  }
  if (entry.status === 200) {
    if (!op.ok(entry.response)) problems.push(`${where}: 200 body off-spec: ${errorsOf(op.ok)}`);
    // The fake must never accept what the spec rejects.
    if (op.request !== null && !op.request(entry.body ?? {})) problems.push(`${where}: accepted an off-spec request: ${errorsOf(op.request)}`);
    if (!op.takesJsonBody && op.method === 'POST' && entry.body !== undefined && JSON.stringify(entry.body) !== '{}') {
      problems.push(`${where}: accepted a body on an endpoint that takes none`);
    }
    if (op.query !== null) {
      const query: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(entry.query)) {
        if (key.startsWith('expand')) continue;
        query[key] = op.integerParams.includes(key) && /^-?\d+$/.test(value) ? Number(value) : value;
      }
      if (!op.query(query)) problems.push(`${where}: accepted off-spec query parameters: ${errorsOf(op.query)}`);
    }
  } else {
    if (!op.error(entry.response)) problems.push(`${where}: error body off-spec: ${errorsOf(op.error)}`);
    const code = (entry.response as { error?: { code?: unknown } }).error?.code;
    const specific = typeof code === 'string' ? op.specificErrors.get(code) : undefined;
    if (specific !== undefined && !specific(entry.response)) problems.push(`${where}: ${String(code)} body off-spec: ${errorsOf(specific)}`);
  }
  return problems;
}

/**
 * Every exchange in the fake's log checked against the spec; an empty list means it all conforms.
 *
 * @example
 * afterEach(() => expect(trafficProblems(fake, { allRequests: true })).toEqual([]));
 */
export function trafficProblems(fake: FakeStripe, options: SpecCheckOptions & { specPath?: string } = {}): string[] {
  const spec = loadStripeSpec(options.specPath);
  return fake.requests().flatMap((entry) => specProblems(entry, spec, options));
}
