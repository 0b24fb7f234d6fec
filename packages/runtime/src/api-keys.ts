import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { type FileWatch, watchFiles } from "./file-watch.js";
import type { Logger } from "./logger.js";
import { type Caller, TENANT_PATTERN } from "./tenants.js";

interface KeyEntry extends Caller {
  readonly hash: Buffer;
}

/**
 * Reads an API keys file: lines `TENANT SHA256_HEX_OF_KEY [admin]`, `#` starting a comment. Problems name
 * the line, never its content.
 */
export function parseApiKeys(text: string): { entries: KeyEntry[]; problems: string[] } {
  const entries: KeyEntry[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  text.split("\n").forEach((raw, i) => {
    const words = (raw.split("#")[0] ?? "").trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return;
    const [tenant = "", hex = "", flag, extra] = words;
    const line = `line ${i + 1}`;
    if (!TENANT_PATTERN.test(tenant))
      problems.push(`${line}: the tenant must be 1-64 of A-Z a-z 0-9 _ . : @ -`);
    else if (!/^[0-9a-f]{64}$/i.test(hex)) problems.push(`${line}: the key must be a SHA-256 hex digest`);
    else if ((flag !== undefined && flag !== "admin") || extra !== undefined)
      problems.push(`${line}: after the digest only "admin" may follow`);
    else if (seen.has(hex.toLowerCase())) problems.push(`${line}: the same key digest is listed twice`);
    else {
      seen.add(hex.toLowerCase());
      entries.push({ tenant, admin: flag === "admin", hash: Buffer.from(hex, "hex") });
    }
  });
  return { entries, problems };
}

/** SHA-256 of a key, as the file lists it. */
export function apiKeyDigest(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/**
 * The API keys of `API_KEYS_FILE`, reloaded when the file changes. A file that does not parse keeps the
 * previous keys (and says why in the log); at startup it is an error. Keys exist here only as digests.
 */
export class ApiKeys {
  private entries: KeyEntry[];
  private readonly watch: FileWatch;

  constructor(
    readonly file: string,
    private readonly logger: Logger,
  ) {
    this.entries = this.read();
    logger.info({ file, keys: this.entries.length, tenants: this.tenantCount() }, "API keys required");
    this.watch = watchFiles([file], () => this.reload());
  }

  /** The caller a key belongs to. Every digest is compared, in constant time, whichever matches. */
  lookup(key: string): Caller | undefined {
    const digest = createHash("sha256").update(key, "utf8").digest();
    let found: KeyEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.hash, digest)) found ??= entry;
    }
    return found && { tenant: found.tenant, admin: found.admin };
  }

  close(): void {
    this.watch.close();
  }

  private reload(): void {
    try {
      this.entries = this.read();
      this.logger.info(
        { file: this.file, keys: this.entries.length, tenants: this.tenantCount() },
        "API keys reloaded",
      );
    } catch (err) {
      this.logger.warn(
        { file: this.file, err: (err as Error).message },
        "API keys file not loaded; the previous keys stay",
      );
    }
  }

  private read(): KeyEntry[] {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      throw new Error(`cannot read ${this.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const { entries, problems } = parseApiKeys(text);
    if (problems.length > 0) throw new Error(`${this.file}: ${problems.join("; ")}`);
    return entries;
  }

  private tenantCount(): number {
    return new Set(this.entries.map((e) => e.tenant)).size;
  }
}
