// The reporter's view of each HTTP attempt: pacing before it, counting and 429 pauses after it.
export interface HttpObserver {
  /** Resolves when the request may be sent (rate limit, 429 pause). */
  beforeRequest(signal?: AbortSignal): Promise<void>;
  /** Called with every response status, and the `Retry-After` seconds when sent. */
  afterResponse(status: number, retryAfterSeconds: number | undefined): void;
}
