import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

/**
 * The promise that domain folders import no transport is kept by the linter (biome.json's overrides), not by
 * review: the repository's own Biome config, run over a scratch tree of the same layout, must refuse
 * transport imports in domain folders and accept them in handlers and clients/ folders.
 */
const root = join(import.meta.dirname, "..", "..");
const biome = join(root, "node_modules", ".bin", "biome");
const scratch = mkdtempSync(join(tmpdir(), "dmesh-lint-"));
copyFileSync(join(root, "biome.json"), join(scratch, "biome.json"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const TRANSPORT = `import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";
import { startConnectServer } from "@dmesh/runtime";

export const used = [Code.Internal, createConnectTransport, status.OK, startConnectServer];
`;
const TRANSPORT_FREE = `import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";

export function check(value: number, logger: Logger): void {
  logger.debug({ value }, "checked");
  if (value < 0) throw new InvalidArgumentError("value", "must be positive");
}
`;

/** Biome's diagnostics for one file written at `path` in the scratch tree. */
async function lint(path: string, text: string): Promise<{ rule: string; line: number }[]> {
  const file = join(scratch, path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  const result = await promisify(execFile)(biome, ["lint", "--reporter=json", path], {
    cwd: scratch,
    timeout: 30_000,
  }).catch((err: { stdout: string; code: number }) => err);
  const report = JSON.parse(result.stdout) as {
    diagnostics: { category: string; location: { start?: { line: number } } }[];
  };
  return report.diagnostics.map((d) => ({ rule: d.category, line: d.location.start?.line ?? 0 }));
}

describe("the linter keeps domain folders free of transport", () => {
  it.each([
    "services/orchestrator/src/mesh/cleanup-policy.ts",
    "services/inference/src/pipeline/denoise-step.ts",
    "services/postprocess/src/process/chunk-protocol.ts",
    "packages/spec/src/validate-size.ts",
    "packages/onnx/src/session-options.ts",
  ])("fails %s importing @connectrpc/*, @grpc/* or the runtime's transport barrel", async (path) => {
    const found = await lint(path, TRANSPORT);
    expect(found).toEqual([1, 2, 3, 4].map((line) => ({ rule: "lint/style/noRestrictedImports", line })));
  });

  it.each([
    "services/orchestrator/src/mesh-handler.ts",
    "services/orchestrator/src/routes.ts",
    "services/orchestrator/src/clients/replica-pool.ts",
    "services/inference/src/clients/device-memory.ts",
  ])("lets %s (transport by its place) import them", async (path) => {
    expect(await lint(path, TRANSPORT)).toEqual([]);
  });

  it("lets a domain folder take errors and the logger from the runtime's transport-free entries", async () => {
    expect(await lint("services/device/src/leases/lease-check.ts", TRANSPORT_FREE)).toEqual([]);
  });
});
