import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { cors } from "@connectrpc/connect";
import { FIELD_TRAILER } from "./error-table.js";
import { REQUEST_ID_HEADER } from "./request-scope.js";

type Handler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void;

// Connect's lists (what Connect and gRPC-Web clients send and read), plus ours: the API key, the request id
// and the field a bad request is about (a header, and a `trailer-` header in Connect unary answers).
const ALLOW_HEADERS = [...cors.allowedHeaders, "Authorization", REQUEST_ID_HEADER].join(", ");
const EXPOSE_HEADERS = [
  ...cors.exposedHeaders,
  REQUEST_ID_HEADER,
  FIELD_TRAILER,
  `Trailer-${FIELD_TRAILER}`,
].join(", ");
const ALLOW_METHODS = cors.allowedMethods.join(", ");
// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE_S = "7200";

/** Checks a `CORS_ORIGINS` entry: `*`, or an origin as browsers send it (`https://app.example.com:8443`). */
export function parseOrigin(entry: string): string {
  if (entry === "*") return entry;
  let origin: string;
  try {
    origin = new URL(entry).origin;
  } catch {
    throw new Error(`"${entry}" is not an origin (scheme://host[:port])`);
  }
  if (origin !== entry)
    throw new Error(`"${entry}" is not an origin (scheme://host[:port]); did you mean "${origin}"?`);
  return origin;
}

/**
 * Lets browser pages on `origins` call `handler` (Connect, gRPC-Web): preflights answered here (204, or 403
 * for another origin), and the answers' headers that clients read exposed. No origins: `handler` unchanged.
 */
export function withCors(handler: Handler, origins: readonly string[]): Handler {
  if (origins.length === 0) return handler;
  const any = origins.includes("*");
  const listed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin !== "string") return handler(req, res);
    const allowed = any || listed.has(origin);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined) {
      if (!allowed) {
        res.writeHead(403, { vary: "Origin" });
        res.end();
        return;
      }
      res.writeHead(204, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": PREFLIGHT_MAX_AGE_S,
        vary: "Origin",
      });
      res.end();
      return;
    }
    res.setHeader("vary", "Origin");
    if (allowed) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    }
    handler(req, res);
  };
}
