import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const REPO_ROOT = join(import.meta.dirname, "..", "..");

/** Runs npm or npx in the repository root; offline, so that nothing here can fetch a package. */
function npm(
  command: "npm" | "npx",
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: REPO_ROOT, timeout: 60_000, env: { ...process.env, npm_config_offline: "true", ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

describe("the project's npm setup, as a newcomer meets it", () => {
  it("gives npm no config it warns about", async () => {
    const { code, output } = await npm("npm", ["pkg", "get", "name"]);
    expect(code).toBe(0);
    expect(output).toBe('"dmesh"\n');
  });

  it("keeps onnxruntime-node's install script (the CUDA download) from running, and would see it run", async () => {
    // If the script ran after all, this makes it exit at once instead of downloading.
    const env = { ONNXRUNTIME_NODE_INSTALL: "skip" };
    const args = ["rebuild", "onnxruntime-node", "--foreground-scripts", "--loglevel", "info"];
    const ran = /run onnxruntime-node@[\d.]+ postinstall/;
    const denied = await npm("npm", args, env);
    expect(denied.code).toBe(0);
    expect(denied.output).not.toMatch(ran);
    const allowed = await npm("npm", [...args, "--dangerously-allow-all-scripts"], env);
    expect(allowed.output).toMatch(ran);
  });

  it("links the dmesh command, so that `npx dmesh` runs the CLI", async () => {
    const { code, output } = await npm("npx", ["dmesh", "--help"]);
    expect(code).toBe(0);
    expect(output).toMatch(/^dmesh: diffusion mesh command line\n/);
  });
});
