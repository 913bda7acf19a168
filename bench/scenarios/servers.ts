// The HTTP servers under test: which role file runs each kind, and how to start a bare/metered pair.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import type { FakeReady } from '../roles/fake-stripe';
import type { ServerConfig, ServerKind, ServerReady, ServerVariant } from '../roles/shared';

export type { ServerKind, ServerVariant };

export function serverEntry(kind: ServerKind): string {
  return kind === 'express' ? 'roles/express-server.ts' : 'roles/nest-server.ts';
}

/** Starts one server on the code-under-test CPU. */
export function startServer(kind: ServerKind, variant: ServerVariant, fake: FakeReady): Promise<Child<ServerReady>> {
  const config: ServerConfig = { kind, variant, fake };
  return Child.start<ServerReady>(serverEntry(kind), { cpus: placement.server, config });
}
