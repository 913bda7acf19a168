// The logger used when the user gives none: silent debug unless NODE_DEBUG=metered, loud failures.
import { debuglog } from 'node:util';
import type { MeterLogger } from './types';

const trace = debuglog('metered');

function warning(type: string, obj: object, msg?: string): void {
  const code = (obj as { code?: unknown }).code;
  process.emitWarning(msg ?? type, { type, code: typeof code === 'string' ? code : undefined, detail: JSON.stringify(obj) });
}

/** Debug and info through `NODE_DEBUG=metered`; warnings and errors as process warnings (lost usage is never silent). */
export const defaultLogger: MeterLogger = {
  debug: (obj, msg) => trace('%s %j', msg ?? '', obj),
  info: (obj, msg) => trace('%s %j', msg ?? '', obj),
  warn: (obj, msg) => warning('MeterWarning', obj, msg),
  error: (obj, msg) => warning('MeterError', obj, msg),
};
