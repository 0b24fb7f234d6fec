import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { apiKeyDigest } from "@dmesh/runtime";

/** A tenant's name and the clear API key its client sends (the file holds its SHA-256 only). */
export interface TestTenant {
  readonly name: string;
  readonly key: string;
  readonly admin?: boolean;
}

/** A fresh random key for `name`. */
export function tenant(name: string, admin = false): TestTenant {
  return { name, key: `dmesh_${name}_${randomBytes(18).toString("base64url")}`, admin };
}

/** The API_KEYS_FILE lines for `tenants`, with a comment, as an operator writes them. */
export function keysFile(tenants: readonly TestTenant[]): string {
  const lines = tenants.map((t) => `${t.name} ${apiKeyDigest(t.key)}${t.admin ? " admin" : ""}`);
  return ["# tenant sha256(key) [admin]", ...lines, ""].join("\n");
}

/** A temporary directory for key files and certificates; `remove` when done. */
export function scratchDir(): { dir: string; write(name: string, text: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-door-"));
  return {
    dir,
    write: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The call's failure as code, message and field (what tells two failures apart), or "ok". */
export async function outcome(
  call: () => Promise<unknown>,
): Promise<{ code: string; message: string; field: string | null } | "ok"> {
  try {
    await call();
    return "ok";
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code], message: ce.rawMessage, field: ce.metadata.get("dmesh-field") };
  }
}

/** Every stream message, in order. */
export async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const message of stream) out.push(message);
  return out;
}

/** The orchestrator's audit lines so far ({ tenant, action, object }), from its JSON log. */
export function auditLines(logFile: string): { tenant: string; action: string; object: string }[] {
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((line) => line.includes('"audit"'))
    .map((line) => (JSON.parse(line) as { audit: { tenant: string; action: string; object: string } }).audit);
}
