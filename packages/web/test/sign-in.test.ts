import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { orchestratorSettings } from "@dmesh/orchestrator";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../../../test/support/test-mesh.js";
import { type Chromium, chromiumMissing, launchChromium, poll, SCREENSHOTS } from "./support/chromium.js";

// Keys arrive with the public door's API_KEYS_FILE: until the orchestrator's config table has that setting,
// there is nothing to sign in to.
const keysSupported = Object.values(orchestratorSettings).some(
  (s) => (s as { env?: string }).env === "API_KEYS_FILE",
);
const skip =
  chromiumMissing() ?? (keysSupported ? undefined : "the orchestrator has no API_KEYS_FILE setting yet");
if (skip) console.warn(`web sign-in test skipped: ${skip}`);

const KEY = "dmesh-web-test-key-5b1f0c";

let mesh: TestMesh;
let browser: Chromium;
let page: Page;

describe.skipIf(skip !== undefined)("signing in to the web playground when API keys are on", () => {
  beforeAll(async () => {
    const keys = join(process.env.TMPDIR ?? "/tmp", `dmesh-web-keys-${process.pid}`);
    writeFileSync(
      keys,
      `# tenant sha256(key)\nweb-tester ${createHash("sha256").update(KEY).digest("hex")}\n`,
    );
    mesh = await startTestMesh({ API_KEYS_FILE: keys });
    browser = await launchChromium();
    page = await browser.context.newPage();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await mesh?.dispose();
  });

  it("asks for a key, says when one is wrong, keeps the right one and generates with it", async () => {
    await page.goto(mesh.url);
    const dialog = page.getByRole("dialog", { name: "Sign in" });
    await dialog.waitFor({ timeout: 30_000 });
    await dialog.getByLabel("API key").fill("not-the-key");
    await dialog.getByRole("button", { name: "Sign in" }).click();
    const key = dialog.getByLabel("API key");
    await poll(() => key.getAttribute("aria-invalid")).toBe("true");
    expect(await dialog.locator("#sign-in-key-error").textContent()).toMatch(/not accepted.*UNAUTHENTICATED/);
    await page.screenshot({ path: join(SCREENSHOTS, "sign-in-refused.png") });

    // Dismissed, the dialog comes back from the header.
    await dialog.getByRole("button", { name: "Not now" }).click();
    await dialog.waitFor({ state: "hidden" });
    await page.getByRole("banner").getByRole("button", { name: "Sign in" }).click();
    await dialog.waitFor();

    await key.fill(KEY);
    await dialog.getByRole("button", { name: "Sign in" }).click();
    await dialog.waitFor({ state: "hidden" });
    const gen = page.getByRole("region", { name: "Generate", exact: true });
    await poll(() => gen.getByLabel("Workflow").locator("option").count()).toBeGreaterThan(1);
    await gen.getByLabel("Prompt", { exact: true }).fill("a key-holder's cat");
    for (const [label, value] of Object.entries({ Steps: "4", Width: "64", Height: "64", Seed: "5" }))
      await gen.getByLabel(label, { exact: true }).fill(value);
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await gen.getByRole("img", { name: "Result 1 of 1, seed 5" }).waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(SCREENSHOTS, "sign-in-generated.png") });

    // The key stays in this browser: a reload asks for nothing; signing out forgets it.
    await page.reload();
    await poll(() => gen.getByLabel("Workflow").locator("option").count()).toBeGreaterThan(1);
    expect(await dialog.isVisible()).toBe(false);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.reload();
    await dialog.waitFor({ timeout: 30_000 });
  }, 180_000);
});
