/** The tenant that owns everything when no API keys are configured. */
export const DEFAULT_TENANT = "default";

/** Who a call comes from. */
export interface Caller {
  readonly tenant: string;
  /** May run mesh-wide operations (Cleanup). */
  readonly admin: boolean;
}

/** Tenant names: short, and safe in logs, SQL parameters and `SAFETY_POLICY` entries. */
export const TENANT_PATTERN = /^[\w.:@-]{1,64}$/;
