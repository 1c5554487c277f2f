import { type IncomingMessage, type RequestListener, ServerResponse } from 'node:http';

/** Told when a held response's `end()` is called; `state` is what `holdEnd` was given. */
export interface EndHolder<S> {
  ended(res: GatewayResponse, state: S): void;
}

/**
 * The ServerResponse of every gateway listener (`createServer({ ServerResponse })`). Its `end()` —
 * the response's last bytes: every path keeps them back until then (ResponseRelay.holdLast,
 * pipeHoldingLast; problem and policy answers are sent whole by `end()`) — can be held: the holder is
 * told, and the bytes leave when it calls `releaseEnd()`. The durable analytics spool holds it until
 * the call's event is in the spool file.
 *
 * A class rather than a replaced `res.end` per request: no closures per request, and every response
 * keeps one shape (an own `end` property gave the objects a second one).
 */
export class GatewayResponse<
  Request extends IncomingMessage = IncomingMessage,
> extends ServerResponse<Request> {
  #holder: EndHolder<unknown> | null = null;
  #state: unknown = null;
  #chunk: unknown = undefined;
  #encoding: unknown = undefined;
  #callback: unknown = undefined;
  /** An `end()` is held: later calls change nothing (as `end()` on an ended response). */
  #pending = false;

  /** The next `end()` waits for `holder`. */
  holdEnd<S>(holder: EndHolder<S>, state: S): void {
    this.#holder = holder as EndHolder<unknown>;
    this.#state = state;
  }

  // biome-ignore lint/suspicious/noExplicitAny: the arguments go to ServerResponse.end as they came
  override end(chunk?: any, encoding?: any, callback?: any): this {
    if (this.#pending) return this;
    const holder = this.#holder;
    if (holder === null || this.destroyed) return super.end(chunk, encoding, callback);
    const state = this.#state;
    this.#pending = true;
    this.#holder = null;
    this.#state = null;
    this.#chunk = chunk;
    this.#encoding = encoding;
    this.#callback = callback;
    holder.ended(this, state);
    return this;
  }

  /** Sends what the held `end()` was given (nothing when the client has gone meanwhile). */
  releaseEnd(): void {
    if (!this.#pending) return;
    const chunk = this.#chunk;
    const encoding = this.#encoding;
    const callback = this.#callback;
    this.#chunk = this.#encoding = this.#callback = undefined;
    this.#pending = false;
    // biome-ignore lint/suspicious/noExplicitAny: as in end()
    if (!this.destroyed) super.end(chunk as any, encoding as any, callback as any);
  }
}

/** A request listener of the gateway's listeners: its responses are GatewayResponses. */
export type GatewayListener = RequestListener<typeof IncomingMessage, typeof GatewayResponse>;
