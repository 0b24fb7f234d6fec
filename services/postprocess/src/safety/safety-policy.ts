export const SAFETY_POLICIES = ["pass", "flag", "blur", "reject"] as const;
export type SafetyPolicyName = (typeof SAFETY_POLICIES)[number];

/** The policy for requests that name none: one per tenant, and one for every other tenant. */
export interface SafetyPolicyTable {
  readonly fallback: SafetyPolicyName;
  readonly tenants: ReadonlyMap<string, SafetyPolicyName>;
}

const TENANT = /^[\w.:@-]{1,128}$/;

/**
 * Reads `SAFETY_POLICY`: a policy for everyone (`flag`), optionally followed by per-tenant ones
 * (`flag,acme=reject,studio=pass`). Throws an Error saying what is wrong.
 */
export function parseSafetyPolicyTable(raw: string): SafetyPolicyTable {
  const [first = "", ...rest] = raw.split(",").map((part) => part.trim());
  const tenants = new Map<string, SafetyPolicyName>();
  for (const entry of rest) {
    const [tenant = "", policy, extra] = entry.split("=").map((s) => s.trim());
    if (!TENANT.test(tenant) || policy === undefined || extra !== undefined) {
      throw new Error(`"${entry}" is not tenant=policy`);
    }
    if (tenants.has(tenant)) throw new Error(`tenant "${tenant}" is given twice`);
    tenants.set(tenant, policyName(policy));
  }
  return { fallback: policyName(first), tenants };
}

/** The policies a table can ask for. */
export function policiesOf(table: SafetyPolicyTable): Set<SafetyPolicyName> {
  return new Set([table.fallback, ...table.tenants.values()]);
}

function policyName(value: string): SafetyPolicyName {
  if (!(SAFETY_POLICIES as readonly string[]).includes(value)) {
    throw new Error(`"${value}" is not a policy (${SAFETY_POLICIES.join(", ")})`);
  }
  return value as SafetyPolicyName;
}
