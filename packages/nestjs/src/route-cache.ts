// What a route needs looked up once, kept by handler then controller (a handler may be inherited by several controllers).

export class RouteCache<T> {
  private readonly byHandler = new WeakMap<object, Map<object, T>>();

  /** The value for the route, from `compute()` the first time only. */
  get(handler: object, controller: object, compute: () => T): T {
    let byController = this.byHandler.get(handler);
    if (byController === undefined) {
      byController = new Map();
      this.byHandler.set(handler, byController);
    }
    if (byController.has(controller)) return byController.get(controller) as T;
    const value = compute();
    byController.set(controller, value);
    return value;
  }
}
