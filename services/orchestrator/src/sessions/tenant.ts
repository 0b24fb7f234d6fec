import type { Session } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";

/** The tenant of everything while API keys are off. */
export const DEFAULT_TENANT = "default";

/**
 * The tenant a session belongs to, for metric labels and mesh events: the one place that reads it, so that
 * sessions carrying their tenant (API keys) change only this.
 */
export function tenantOf(_session: Session): string {
  return DEFAULT_TENANT;
}
