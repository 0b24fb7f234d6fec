import type { Logger } from "@dmesh/runtime";

/**
 * One log line per control action and deletion: which tenant did what to which object (`audit` set, so a
 * log pipeline can route these lines apart). `logger` is the call's, so the line carries its request id.
 */
export function audit(logger: Logger, tenant: string, action: string, object: string): void {
  logger.info({ audit: { tenant, action, object } }, "audit");
}
