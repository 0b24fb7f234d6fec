import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../../../test/support/test-mesh.js";
import { type Chromium, chromiumMissing, launchChromium, poll, SCREENSHOTS } from "./support/chromium.js";

const missing = chromiumMissing();
if (missing) console.warn(`web gallery tests skipped: ${missing}`);

let mesh: TestMesh;
let browser: Chromium;
let page: Page;

async function screenshot(name: string): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** How a GetArtifact of `artifactId` ends: "ok" with its bytes read, or the error's code name. */
async function fetchArtifact(artifactId: string): Promise<string> {
  const artifacts = createClient(
    ArtifactService,
    createConnectTransport({ baseUrl: mesh.url, httpVersion: "1.1" }),
  );
  try {
    for await (const _ of artifacts.getArtifact({ artifactId }, { timeoutMs: 30_000 })) {
      // read to the end
    }
    return "ok";
  } catch (err) {
    return (err as { code?: number }).code === 5 ? "NotFound" : String(err);
  }
}

describe.skipIf(missing !== undefined)("the Gallery in Chromium, against a running mesh", () => {
  beforeAll(async () => {
    mesh = await startTestMesh();
    browser = await launchChromium();
    page = await browser.context.newPage();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await mesh?.dispose();
  });

  it("deletes one image, with a confirm: the session's other image stays, the deleted one is gone", async () => {
    await page.goto(mesh.url);
    const gen = page.getByRole("region", { name: "Generate", exact: true });
    await poll(() => gen.getByLabel("Workflow").locator("option").count()).toBeGreaterThan(1);
    for (const [label, value] of Object.entries({
      Prompt: "two owls on a branch",
      Steps: "4",
      Width: "64",
      Height: "64",
      Seed: "5",
      Images: "2",
    }))
      await gen.getByLabel(label, { exact: true }).fill(value);
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await gen.getByRole("img", { name: "Result 2 of 2, seed 6" }).waitFor({ timeout: 120_000 });

    const processing = createClient(
      ProcessingService,
      createConnectTransport({ baseUrl: mesh.url, httpVersion: "1.1" }),
    );
    const made = (await processing.listSessions({})).sessions.find(
      (s) => s.spec?.conditioning?.prompt === "two owls on a branch",
    );
    const [first, second] = made?.artifactIds ?? [];
    if (!made || !first || !second) throw new Error("expected a session with two images");
    const short = made.id.slice(0, 8);

    await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Gallery" }).click();
    const gallery = page.getByRole("region", { name: "Gallery", exact: true });
    const thumb = (n: number) =>
      gallery.getByRole("button", { name: `Open image ${n} of session ${short}: two owls on a branch` });
    await poll(() => thumb(2).count()).toBe(1);
    await thumb(1).click();
    const detail = gallery.getByLabel("Selected image");
    // Its infotext is shown with it.
    await detail.getByText("Parameters", { exact: true }).click();
    expect(await detail.locator("pre.infotext").textContent()).toMatch(
      /^two owls on a branch\n(.|\n)*Seed: 5/,
    );
    const shown = await detail.getByRole("img", { name: /^Image 1 of session/ }).getAttribute("src");

    // Delete asks first; Keep takes it back and nothing is deleted.
    await detail.getByRole("button", { name: `Delete image 1 of session ${short}` }).click();
    await detail.getByRole("button", { name: "Keep" }).click();
    expect(await fetchArtifact(first)).toBe("ok");
    await detail.getByRole("button", { name: `Delete image 1 of session ${short}` }).click();
    await screenshot("gallery-delete-confirm");
    await detail.getByRole("button", { name: `Confirm delete image 1 of session ${short}` }).click();

    // The page updates: one image of the session is left, the detail closes.
    await poll(() => thumb(2).count()).toBe(0);
    await poll(() => gallery.getByRole("button", { name: /^Open image \d of session / }).count()).toBe(1);
    expect(await gallery.getByLabel("Selected image").count()).toBe(0);
    expect(await gallery.getByRole("status").first().textContent()).toBe(
      `Deleted image 1 of session ${short}`,
    );
    await screenshot("gallery-after-delete");

    // The deleted image is gone: its GetArtifact and the page's object URL for it; the other stays.
    expect(await fetchArtifact(first)).toBe("NotFound");
    expect(await fetchArtifact(second)).toBe("ok");
    const session = (await processing.getSession({ sessionId: made.id })).session;
    expect(session?.artifactIds).toEqual([second]);
    expect(
      await page.evaluate(
        (url) =>
          fetch(url ?? "").then(
            () => "loaded",
            () => "revoked",
          ),
        shown,
      ),
    ).toBe("revoked");

    await thumb(1).click();
    await gallery
      .getByLabel("Selected image")
      .getByRole("img", { name: /^Image 1 of session .*, seed 6$/ })
      .waitFor();
  }, 240_000);
});
