// What a route needs looked up once, kept by handler then controller (a handler may be inherited by several controllers).

/** One controller's value for a handler; the others that share the handler follow it. */
interface Entry<T> {
  readonly controller: object;
  readonly value: T;
  readonly next: Entry<T> | undefined;
}

export class RouteCache<T> {
  private readonly byHandler = new WeakMap<object, Entry<T>>();

  /**
   * The value for the route, from `compute(handler, controller)` the first time only. One table
   * lookup per request, and `compute` is passed rather than a closure made per call.
   */
  get(handler: object, controller: object, compute: (handler: object, controller: object) => T): T {
    const first = this.byHandler.get(handler);
    for (let entry = first; entry !== undefined; entry = entry.next) {
      if (entry.controller === controller) return entry.value;
    }
    const value = compute(handler, controller);
    this.byHandler.set(handler, { controller, value, next: first });
    return value;
  }
}
