// The HTTP servers under test: which role file runs each kind, and how to start a bare/metered pair.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import type { FakeReady } from '../roles/fake-stripe';
import type { ServerConfig, ServerKind, ServerReady, ServerVariant } from '../roles/shared';

export type { ServerKind, ServerVariant };

export function serverEntry(kind: ServerKind): string {
  return kind === 'express' ? 'roles/express-server.ts' : 'roles/nest-server.ts';
}

/**
 * The fake Stripe of a scenario whose measured responses never wait for it (1, 2, 8's overhead and the
 * A/B tools): on the tools' CPUs at the SCHED_IDLE policy, so that its work on each batch stands in for
 * Stripe's own servers and never delays the load generator beside it (ChildOptions.idle).
 */
export function startBackgroundFake(): Promise<Child<FakeReady>> {
  return Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools, idle: true });
}

/** Starts one server on the code-under-test CPU. */
export function startServer(kind: ServerKind, variant: ServerVariant, fake: FakeReady): Promise<Child<ServerReady>> {
  const config: ServerConfig = { kind, variant, fake };
  return Child.start<ServerReady>(serverEntry(kind), { cpus: placement.server, config });
}
