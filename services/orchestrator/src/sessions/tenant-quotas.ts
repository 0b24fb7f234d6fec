import { TENANT_PATTERN } from "@dmesh/runtime/tenants";

/** What one tenant may hold at once. */
export interface TenantQuota {
  /** Sessions running; more wait in the queue (not an error). */
  readonly running: number;
  /** Sessions waiting; a submit beyond it is RESOURCE_EXHAUSTED. */
  readonly queued: number;
  /** Items of one batch; a larger batch is RESOURCE_EXHAUSTED. */
  readonly batchItems: number;
}

/** `TENANT_QUOTAS` as written: limits for every tenant, and per-tenant ones over them. */
export interface TenantQuotaTable {
  readonly everyone: Partial<TenantQuota>;
  readonly tenants: ReadonlyMap<string, Partial<TenantQuota>>;
}

const KEYS: Record<string, keyof TenantQuota> = {
  running: "running",
  queued: "queued",
  batch_items: "batchItems",
};

/**
 * Reads `TENANT_QUOTAS`: `;`-separated entries of `key=value` pairs (running, queued, batch_items), the
 * entry for one tenant prefixed with `TENANT:`, e.g. `running=2,queued=50;acme:running=8,batch_items=5000`.
 * Unset limits fall back to the entry for everyone, then to the orchestrator's own limits.
 */
export function parseTenantQuotas(raw: string): TenantQuotaTable {
  let everyone: Partial<TenantQuota> | undefined;
  const tenants = new Map<string, Partial<TenantQuota>>();
  for (const entry of raw.split(";").map((e) => e.trim())) {
    if (!entry) continue;
    const colon = entry.indexOf(":");
    const tenant = colon >= 0 ? entry.slice(0, colon).trim() : undefined;
    if (tenant !== undefined && !TENANT_PATTERN.test(tenant))
      throw new Error(`"${tenant}" is not a tenant name`);
    const quota: Partial<Record<keyof TenantQuota, number>> = {};
    for (const pair of entry.slice(colon + 1).split(",")) {
      const [key = "", value = "", extra] = pair.split("=").map((s) => s.trim());
      const field = KEYS[key];
      const n = Number(value);
      if (!field || extra !== undefined)
        throw new Error(`"${pair}" is not running=N, queued=N or batch_items=N`);
      if (!Number.isInteger(n) || n < 1 || n > 1_000_000)
        throw new Error(`${key} must be an integer in [1, 1000000]`);
      quota[field] = n;
    }
    if (tenant === undefined) {
      if (everyone) throw new Error("only one entry may be for every tenant (no TENANT: prefix)");
      everyone = quota;
    } else {
      if (tenants.has(tenant)) throw new Error(`tenant "${tenant}" is given twice`);
      tenants.set(tenant, quota);
    }
  }
  return { everyone: everyone ?? {}, tenants };
}

/** A tenant's quota: its own entry over the entry for everyone over `base`. */
export function quotaOf(table: TenantQuotaTable, base: TenantQuota, tenant: string): TenantQuota {
  return { ...base, ...table.everyone, ...table.tenants.get(tenant) };
}
