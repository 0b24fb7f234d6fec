import { defineConfig } from "vitest/config";

// Native addons (onnxruntime-node, sharp, better-sqlite3) are safest in forked processes.
export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "services/*/test/**/*.test.ts", "test/**/*.test.ts"],
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
