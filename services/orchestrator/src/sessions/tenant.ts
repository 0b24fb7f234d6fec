import type { Batch } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import type { Session } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { DEFAULT_TENANT } from "@dmesh/runtime/tenants";

export { DEFAULT_TENANT };

/**
 * The tenant a session or batch belongs to, for metric labels and mesh events: its own (the caller's API key's
 * tenant; the default one while keys are off).
 */
export function tenantOfSession(owned: Session | Batch): string {
  return owned.tenant || DEFAULT_TENANT;
}
