import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ES module script without type declarations
import { configTables } from "../../scripts/config-tables.mjs";

describe("README", () => {
  it("shows the configuration tables the services actually load", async () => {
    const readme = readFileSync(join(import.meta.dirname, "..", "..", "README.md"), "utf8");
    const section = readme
      .split("<!-- config-tables:begin -->\n")[1]
      ?.split("\n<!-- config-tables:end -->")[0];
    expect(section).toBe(await configTables());
  });
});
