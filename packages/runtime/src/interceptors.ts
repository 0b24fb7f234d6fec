import type { Interceptor } from "@connectrpc/connect";
import { Code, type ConnectError } from "@connectrpc/connect";
import { toConnectError } from "./error-table.js";
import { requestHeaderValue, setResponseHeader } from "./grpc-server.js";
import type { Logger } from "./logger.js";
import { loggerKey, REQUEST_ID_HEADER, requestIdFrom, requestIdKey } from "./request-scope.js";
import { onStreamEnd } from "./stream-end.js";

/**
 * Successful calls quicker than this are logged at debug, not info. A line costs a synchronous write, about
 * 5% of a small loopback hop, and quick calls (health checks, tokenizing, queue polls) are where a mesh makes
 * thousands; the calls an image is made of (generation streams, image processing) take longer and stay at
 * info, as every failure does.
 */
const QUICK_CALL_MS = 100;

/**
 * Server interceptor, outermost: gives the call a request id and a child logger, maps every error through
 * the one error table, and writes one access-log line per call (streams: when the stream ends).
 */
export function createServerInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdFrom(requestHeaderValue(req, REQUEST_ID_HEADER));
    const log = new RequestLogger(logger, requestId, req.service.typeName, req.method.name);
    req.contextValues.set(requestIdKey, requestId);
    req.contextValues.set(loggerKey, log);
    const started = performance.now();
    const finish = (err?: unknown) => {
      const ms = Math.round((performance.now() - started) * 100) / 100;
      if (err === undefined) {
        if (ms < QUICK_CALL_MS) log.debug({ ms, code: "ok" }, "rpc");
        else log.info({ ms, code: "ok" }, "rpc");
        return;
      }
      const ce = toConnectError(err, req.signal);
      const line = { ms, code: codeName(ce), err: ce.rawMessage, cause: describeCause(ce.cause) };
      if (ce.code === Code.Internal) log.error(line, "rpc failed");
      else log.info(line, "rpc");
      return ce;
    };
    try {
      const res = await next(req);
      setResponseHeader(res, REQUEST_ID_HEADER, requestId);
      if (!res.stream) {
        finish();
        return res;
      }
      // Spelled out: a spread would miss header and trailer where they are getters.
      const { service, method, header, trailer } = res;
      return { stream: true, service, method, header, trailer, message: onStreamEnd(res.message, finish) };
    } catch (err) {
      throw finish(err);
    }
  };
}

/**
 * A call's logger, bound to its request id and method, made into a pino child only when something logs: at
 * the default level a quick successful call logs nothing, and making the child (its bindings serialized) was
 * a visible part of such a call.
 */
class RequestLogger implements Logger {
  private bound: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly requestId: string,
    private readonly service: string,
    private readonly method: string,
  ) {}

  private get log(): Logger {
    this.bound ??= this.parent.child({ requestId: this.requestId, rpc: `${this.service}/${this.method}` });
    return this.bound;
  }

  debug(obj: object, msg?: string): void {
    if (this.parent.isLevelEnabled?.("debug") !== false) this.log.debug(obj, msg);
  }

  info(obj: object, msg?: string): void {
    this.log.info(obj, msg);
  }

  warn(obj: object, msg?: string): void {
    this.log.warn(obj, msg);
  }

  error(obj: object, msg?: string): void {
    this.log.error(obj, msg);
  }

  child(bindings: Record<string, unknown>): Logger {
    return this.log.child(bindings);
  }
}

function codeName(err: ConnectError): string {
  return Code[err.code] ?? String(err.code);
}

function describeCause(cause: unknown): string | undefined {
  if (cause instanceof Error) return cause.stack ?? cause.message;
  return cause === undefined ? undefined : String(cause);
}
