import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import { createContextKey } from "@connectrpc/connect";
import type { ApiKeys } from "./api-keys.js";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.js";
import { requestHeaderValue } from "./grpc-server.js";
import { type Caller, DEFAULT_TENANT } from "./tenants.js";

/** Who calls when no keys are configured: the one default tenant, allowed everything (the laptop default). */
const OPEN_DOOR: Caller = { tenant: DEFAULT_TENANT, admin: true };

export const callerKey = createContextKey<Caller>(OPEN_DOOR, { description: "the authenticated caller" });

export interface AuthOptions {
  /** Undefined: no keys, every call is the default tenant's. */
  keys: ApiKeys | undefined;
  /** Services anyone may call, for probes and discovery (health, reflection): full names. */
  openServices: readonly string[];
  /** Mesh-wide methods that need an admin key: `package.Service/Method`. */
  adminMethods: readonly string[];
}

// A longer value is no key of ours: refused without hashing it.
const MAX_KEY_CHARS = 512;
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Server interceptor: the caller's tenant from `authorization: Bearer KEY` (the same header in gRPC, Connect
 * and gRPC-Web), put into the call's context values for handlers (`tenantOf`). A missing or unknown key is
 * UNAUTHENTICATED; an admin method called without an admin key is PERMISSION_DENIED.
 */
export function createAuthInterceptor(options: AuthOptions): Interceptor {
  const open = new Set(options.openServices);
  const adminOnly = new Set(options.adminMethods);
  return (next) => async (req) => {
    if (open.has(req.service.typeName)) return next(req);
    const caller = options.keys
      ? authenticate(options.keys, requestHeaderValue(req, "authorization"))
      : OPEN_DOOR;
    if (!caller.admin && adminOnly.has(`${req.service.typeName}/${req.method.name}`))
      throw new PermissionDeniedError(`${req.method.name} needs an admin API key`);
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}

function authenticate(keys: ApiKeys, header: string | null): Caller {
  if (!header) throw new UnauthenticatedError("an API key is required: send authorization: Bearer KEY");
  const key = BEARER.exec(header)?.[1];
  if (!key) throw new UnauthenticatedError("the authorization header must be: Bearer KEY");
  const caller = key.length <= MAX_KEY_CHARS ? keys.lookup(key) : undefined;
  if (!caller) throw new UnauthenticatedError("unknown API key");
  return caller;
}

/** Whether an `authorization` header carries an admin key (for plain HTTP paths beside the RPCs). */
export function isAdminKey(keys: ApiKeys, header: string | undefined): boolean {
  const key = header ? BEARER.exec(header)?.[1] : undefined;
  return key !== undefined && key.length <= MAX_KEY_CHARS && keys.lookup(key)?.admin === true;
}

/** Who makes the call: its tenant, and whether it holds an admin key. */
export function callerOf(ctx: HandlerContext): Caller {
  return ctx.values.get(callerKey);
}

/** The tenant a call is made for: what domain code receives. */
export function tenantOf(ctx: HandlerContext): string {
  return ctx.values.get(callerKey).tenant;
}
