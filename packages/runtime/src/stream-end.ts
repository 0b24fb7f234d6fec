import { Code, ConnectError } from "@connectrpc/connect";

/** What `onStreamEnd` reports when the reader stops before the stream's end (a call cancelled, a break). */
export const LEFT_EARLY = new ConnectError("the reader left the stream early", Code.Canceled);

/**
 * `messages`, calling `onEnd` once: with nothing when they end, with the error when they fail (what `onEnd`
 * returns is thrown in its place, when defined), with `LEFT_EARLY` when the reader stops first. A plain
 * iterator rather than an async generator around `yield*`, which added promise hops to every message.
 */
export function onStreamEnd<T>(
  messages: AsyncIterable<T>,
  onEnd: (err?: unknown) => unknown,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = messages[Symbol.asyncIterator]();
      let ended = false;
      const end = (err?: unknown) => {
        if (ended) return undefined;
        ended = true;
        return onEnd(err);
      };
      return {
        next: () =>
          it.next().then(
            (result) => {
              if (result.done) end();
              return result;
            },
            (err: unknown) => {
              throw end(err) ?? err;
            },
          ),
        return: (value?: unknown) => {
          end(LEFT_EARLY);
          return it.return?.(value) ?? Promise.resolve({ done: true as const, value: value as T });
        },
      };
    },
  };
}
