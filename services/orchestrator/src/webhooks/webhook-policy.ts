import { FailedPreconditionError, InvalidArgumentError, quote } from "@dmesh/runtime/errors";

const MAX_URL_CHARS = 2048;

export interface WebhookSettings {
  /** URL prefixes a callback must start with; none = webhooks are off. */
  readonly allowedUrls: readonly string[];
  /** The mesh's secret, used while API keys are off. */
  readonly meshSecret: string;
  /** Each tenant's secret, used while API keys are on. */
  readonly tenantSecrets: ReadonlyMap<string, string>;
  /** Whether API keys (tenants) are on. */
  readonly keysOn: boolean;
}

/**
 * Which callback URLs a session or batch may name, and the secret its deliveries are signed with. A URL must
 * start with a configured prefix (WEBHOOK_ALLOWED_URLS), so that callbacks cannot reach arbitrary internal
 * addresses; prefixes should end with "/" or a port so that `https://hooks.example.com` does not admit
 * `https://hooks.example.com.evil.net`.
 */
export class WebhookPolicy {
  constructor(private readonly settings: WebhookSettings) {}

  /** The URL as given when it may be called back for `tenant`, else INVALID_ARGUMENT / FAILED_PRECONDITION. */
  check(url: string, tenant: string, field = "callback_url"): string {
    if (!url) return "";
    if (url.length > MAX_URL_CHARS)
      throw new InvalidArgumentError(field, `is ${url.length} characters; the limit is ${MAX_URL_CHARS}`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InvalidArgumentError(field, `${quote(url)} is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
      throw new InvalidArgumentError(field, `${quote(url)} is not http(s)`);
    if (parsed.username || parsed.password)
      throw new InvalidArgumentError(field, "must not carry credentials");
    if (!this.settings.allowedUrls.some((prefix) => parsed.href.startsWith(prefix)))
      throw new InvalidArgumentError(
        field,
        `${quote(url)} matches no prefix of WEBHOOK_ALLOWED_URLS${this.settings.allowedUrls.length === 0 ? " (webhooks are off)" : ""}`,
      );
    this.secretOf(tenant, field);
    return parsed.href;
  }

  /** The secret `tenant`'s deliveries are signed with. */
  secretOf(tenant: string, field = "callback_url"): string {
    const secret = this.settings.keysOn ? this.settings.tenantSecrets.get(tenant) : this.settings.meshSecret;
    if (!secret)
      throw new FailedPreconditionError(
        this.settings.keysOn
          ? `tenant ${quote(tenant)} has no webhook secret (WEBHOOK_TENANT_SECRETS)`
          : "the mesh has no webhook secret (WEBHOOK_SECRET)",
        field,
      );
    return secret;
  }
}

/** WEBHOOK_TENANT_SECRETS: `tenant=secret,tenant=secret`. */
export function parseTenantSecrets(raw: string): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const entry of raw
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf("=");
    const tenant = entry.slice(0, eq);
    const secret = entry.slice(eq + 1);
    if (eq <= 0 || !secret) throw new Error(`"${tenant || entry.slice(0, 20)}…" is not tenant=secret`);
    if (secret.length < 16) throw new Error(`tenant "${tenant}": a secret needs at least 16 characters`);
    secrets.set(tenant, secret);
  }
  return secrets;
}
