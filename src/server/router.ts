import type { Method, ParamsOf, ResultOf } from '../protocol/frames.js';
import type { Context } from './context.js';
import type { Session } from './session.js';

export type Handler<M extends Method> = (
  params: ParamsOf<M>,
  session: Session,
  ctx: Context,
) => Promise<ResultOf<M>> | ResultOf<M>;

interface Route {
  method: Method;
  handler: Handler<Method>;
}

/** Frame type -> handler. One handler per method; modules register theirs through the same door. */
export class Router {
  readonly #routes = new Map<string, Route>();

  handle<M extends Method>(method: M, handler: Handler<M>): void {
    if (this.#routes.has(method.name)) throw new Error(`a handler for ${method.name} is already registered`);
    this.#routes.set(method.name, { method, handler: handler as unknown as Handler<Method> });
  }

  route(type: string): Route | undefined {
    return this.#routes.get(type);
  }
}
