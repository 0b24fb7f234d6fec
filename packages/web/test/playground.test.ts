import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pngInfo } from "../../../test/support/png-info.js";
import { startTestMesh, type TestMesh } from "../../../test/support/test-mesh.js";
import { type Chromium, chromiumMissing, launchChromium, poll, SCREENSHOTS } from "./support/chromium.js";

const missing = chromiumMissing();
if (missing) console.warn(`web playground tests skipped: ${missing}`);

let mesh: TestMesh;
let browser: Chromium;
let page: Page;
let client: ReturnType<typeof createClient<typeof ProcessingService>>;
const requested: string[] = [];

/** Saves the page as it looks now under test-results/web/. */
async function screenshot(name: string): Promise<void> {
  // From the top: a sticky header would otherwise be drawn where the page was scrolled to.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function openPage(name: string): Promise<void> {
  await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name, exact: true }).click();
  await poll(() => page.evaluate(() => location.hash)).toBe(`#/${name.toLowerCase()}`);
}

/** Records, in the page, the furthest progress and the step text seen while something runs. */
async function watchProgress(): Promise<void> {
  await page.evaluate(() => {
    const seen = { progress: 0, midway: false, steps: [] as string[], preview: false };
    (window as unknown as { seen: typeof seen }).seen = seen;
    const look = () => {
      const bar = document.querySelector<HTMLProgressElement>('progress[aria-label="Generation progress"]');
      if (bar) {
        seen.progress = Math.max(seen.progress, bar.value);
        if (bar.value > 0 && bar.value < 1) seen.midway = true;
        const text = bar.getAttribute("aria-valuetext") ?? "";
        const step = /step \d+\/\d+/.exec(text)?.[0];
        if (step && seen.steps.at(-1) !== step) seen.steps.push(step);
      }
      if (document.querySelector('img[alt="Live preview of the generation in progress"]'))
        seen.preview = true;
      requestAnimationFrame(look);
    };
    look();
  });
}

async function progressSeen() {
  return page.evaluate(
    () =>
      (
        window as unknown as {
          seen: { progress: number; midway: boolean; steps: string[]; preview: boolean };
        }
      ).seen,
  );
}

/** A page's own section (the others are mounted, hidden). */
function region(name: string) {
  return page.getByRole("region", { name, exact: true });
}

async function fillSpec(values: Record<string, string>, where = region("Generate")): Promise<void> {
  for (const [label, value] of Object.entries(values))
    await where.getByLabel(label, { exact: true }).fill(value);
}

describe.skipIf(missing !== undefined)("the web playground in Chromium, against a running mesh", () => {
  beforeAll(async () => {
    mesh = await startTestMesh();
    client = createClient(
      ProcessingService,
      createConnectTransport({ baseUrl: mesh.url, httpVersion: "1.1" }),
    );
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on("request", (r) => requested.push(r.url()));
    console.log(`web playground screenshots: ${SCREENSHOTS}`);
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await mesh?.dispose();
  });

  it("typing a prompt and pressing Generate shows progress and previews, then the image", async () => {
    await page.goto(mesh.url);
    const gen = region("Generate");
    await poll(() => gen.getByLabel("Workflow").locator("option").count()).toBeGreaterThan(1);
    await fillSpec({ Prompt: "a red fox in snow", Steps: "40", Width: "256", Height: "256", Seed: "7" });
    // Samplers and schedule types by their AUTOMATIC1111 names; a schedule shows only where the sampler takes it.
    await gen.getByLabel("Sampler").selectOption("DDIM");
    expect(await gen.getByLabel("Schedule").locator("option").allTextContents()).toEqual([
      "Default",
      "SGM Uniform",
    ]);
    await gen.getByLabel("Sampler").selectOption("DPM++ 2M SDE");
    await gen.getByLabel("Schedule").selectOption("Karras");
    await watchProgress();
    await gen.getByRole("button", { name: "Generate", exact: true }).click();

    const image = page.getByRole("img", { name: "Result 1 of 1, seed 7" });
    await image.waitFor({ timeout: 120_000 });
    expect(await image.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight])).toEqual([
      256, 256,
    ]);
    const seen = await progressSeen();
    expect(seen.midway).toBe(true);
    expect(seen.steps.length).toBeGreaterThan(1);
    expect(seen.steps.at(-1)).toBe("step 40/40");
    expect(seen.preview).toBe(true);
    await poll(() => gen.getByRole("status").first().textContent()).toContain("completed");
    await screenshot("generate");
  }, 180_000);

  it("shows the image's infotext, copies it and downloads the PNG", async () => {
    const result = page.locator("figure.artifact").first();
    await result.getByText("Parameters", { exact: true }).click();
    const infotext = await result.locator("pre.infotext").textContent();
    expect(infotext).toMatch(/^a red fox in snow\n/);
    expect(infotext).toContain("Steps: 40, Sampler: DPM++ 2M SDE, Schedule type: Karras");
    expect(infotext).toContain("Seed: 7");

    await result.getByRole("button", { name: "Copy parameters" }).click();
    await poll(() => result.getByRole("status").textContent()).toMatch(/Parameters copied|Could not copy/);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      result.getByRole("link", { name: "Download" }).click(),
    ]);
    const path = join(SCREENSHOTS, "download.png");
    await download.saveAs(path);
    const { readFileSync } = await import("node:fs");
    const info = pngInfo(readFileSync(path));
    expect([info.width, info.height]).toEqual([256, 256]);
    expect(info.text.parameters).toBe(infotext);
  }, 60_000);

  it("shows a bad value's error at its field, naming the field", async () => {
    const gen = region("Generate");
    await openPage("Generate");
    await fillSpec({ Width: "100" });
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    const width = gen.getByLabel("Width", { exact: true });
    await poll(() => width.getAttribute("aria-invalid")).toBe("true");
    const message = gen.locator(`#${await width.getAttribute("aria-describedby")}`);
    expect(await message.textContent()).toBe("spec.size.width: must be a multiple of 8, got 100");
    await screenshot("generate-field-error");

    // Editing the field takes its error away; a value the page cannot even send is reported the same way,
    // before any call.
    await fillSpec({ Width: "256" });
    expect(await width.getAttribute("aria-invalid")).toBeNull();
    await fillSpec({ Seed: "seven" });
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    const seed = gen.getByLabel("Seed", { exact: true });
    await poll(() => seed.getAttribute("aria-invalid")).toBe("true");
    expect(await gen.locator("#gen-seed-error").textContent()).toMatch(
      /^spec\.params\.seed: must be a whole number/,
    );
    expect(await width.getAttribute("aria-invalid")).toBeNull();
    await fillSpec({ Seed: "7" });
  }, 60_000);

  it("Cancel in the Queue stops a running session", async () => {
    const gen = region("Generate");
    await fillSpec({ Prompt: "a slow lighthouse", Steps: "500", Width: "256", Height: "256", Seed: "3" });
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await poll(() => gen.getByRole("status").first().textContent(), 60_000).toMatch(
      /running · step \d+\/500/,
    );

    await openPage("Queue");
    const card = region("Queue").getByRole("listitem").filter({ hasText: "a slow lighthouse" });
    await poll(() => card.locator(".badge").textContent()).toBe("running");
    const id = (await card.locator("code").textContent()) ?? "";
    await screenshot("queue-running");
    await card.getByRole("button", { name: `Cancel session ${id}` }).click();
    await poll(() => card.locator(".badge").textContent(), 30_000).toBe("cancelled");

    const { sessions } = await client.listSessions({ states: [SessionState.CANCELLED] });
    const session = sessions.find((s) => s.id.startsWith(id));
    expect(session?.spec?.conditioning?.prompt).toBe("a slow lighthouse");
    expect(session?.denoiseStep).toBeLessThan(500);
    expect(session?.artifactIds).toEqual([]);
    await screenshot("queue");
    // The Generate page's stream ended with the session.
    await openPage("Generate");
    await poll(() => gen.getByRole("status").first().textContent()).toMatch(/^cancelled/);
  }, 120_000);

  it("Stop on Generate cancels the running session", async () => {
    const gen = region("Generate");
    await fillSpec({ Prompt: "a stopped windmill", Steps: "500", Width: "256", Height: "256", Seed: "4" });
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await poll(() => gen.getByRole("status").first().textContent(), 60_000).toMatch(
      /running · step \d+\/500/,
    );
    await gen.getByRole("button", { name: "Stop" }).click();
    await poll(() => gen.getByRole("status").first().textContent()).toMatch(/^cancelled · step \d+\/500/);
    const { sessions } = await client.listSessions({ states: [SessionState.CANCELLED] });
    expect(sessions.some((s) => s.spec?.conditioning?.prompt === "a stopped windmill")).toBe(true);
  }, 120_000);

  it("restarts, pauses, resumes and deletes a session from the Queue", async () => {
    await openPage("Queue");
    const card = region("Queue").getByRole("listitem").filter({ hasText: "a slow lighthouse" });
    const id = (await card.locator("code").textContent()) ?? "";
    const badge = card.locator(".badge");
    await card.getByRole("button", { name: `Restart session ${id}` }).click();
    await poll(() => badge.textContent()).toBe("running");
    await card.getByRole("button", { name: `Pause session ${id}` }).click();
    await poll(() => badge.textContent()).toBe("paused");
    expect(await card.getByRole("button", { name: `Pause session ${id}` }).count()).toBe(0);
    await card.getByRole("button", { name: `Resume session ${id}` }).click();
    await poll(() => badge.textContent()).toMatch(/^(queued|running)$/);
    await card.getByRole("button", { name: `Delete session ${id}` }).click();
    await card.getByRole("button", { name: `Confirm delete session ${id}` }).click();
    await poll(() => card.count()).toBe(0);
    const { sessions } = await client.listSessions({});
    expect(sessions.some((s) => s.id.startsWith(id))).toBe(false);
  }, 120_000);

  it("sends an image from the Gallery to img2img and generates from it", async () => {
    await openPage("Gallery");
    const gallery = region("Gallery");
    const thumb = gallery.getByRole("button", {
      name: /^Open image 1 of session [0-9a-f]{8}: a red fox in snow$/,
    });
    await thumb.click();
    const detail = gallery.getByLabel("Selected image");
    await detail.getByText("Parameters", { exact: true }).click();
    expect(await detail.locator("pre.infotext").textContent()).toMatch(/^a red fox in snow\n(.|\n)*Seed: 7/);
    await screenshot("gallery");

    await detail.getByRole("button", { name: "Send to img2img" }).click();
    await poll(() => page.evaluate(() => location.hash)).toBe("#/generate");
    const gen = region("Generate");
    expect(await gen.getByLabel("Workflow").inputValue()).toBe("img2img");
    expect(await gen.getByLabel("Prompt", { exact: true }).inputValue()).toBe("a red fox in snow");
    await gen.getByRole("img", { name: /^image: image 1 of session/ }).waitFor();
    await fillSpec({ Prompt: "a red fox in snow, watercolor", Steps: "10", Seed: "11", Strength: "0.6" });
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await gen.getByRole("img", { name: "Result 1 of 1, seed 11" }).waitFor({ timeout: 120_000 });
    await screenshot("generate-img2img");

    const { sessions } = await client.listSessions({ states: [SessionState.COMPLETED] });
    const made = sessions.find((s) => s.spec?.conditioning?.prompt === "a red fox in snow, watercolor");
    expect(made?.workflowId).toBe("img2img");
    expect(made?.spec?.params?.strength).toBeCloseTo(0.6);
  }, 180_000);

  it("sends a result to inpaint, paints a mask and generates", async () => {
    const gen = region("Generate");
    await gen.getByRole("button", { name: "Send to inpaint" }).click();
    expect(await gen.getByLabel("Workflow").inputValue()).toBe("inpaint");
    const canvas = gen.getByRole("img", { name: /^Mask canvas/ });
    await canvas.scrollIntoViewIfNeeded();
    const box = await canvas.boundingBox();
    if (!box) throw new Error("the mask canvas has no box");
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.6, { steps: 8 });
    await page.mouse.up();
    await gen.getByRole("img", { name: /^Mask canvas/ }).waitFor();
    await fillSpec({ Prompt: "a red fox in snow, a hat", Steps: "8", Seed: "12" });
    await screenshot("generate-inpaint-mask");
    await gen.getByRole("button", { name: "Generate", exact: true }).click();
    await gen.getByRole("img", { name: "Result 1 of 1, seed 12" }).waitFor({ timeout: 120_000 });

    const { sessions } = await client.listSessions({ states: [SessionState.COMPLETED] });
    expect(
      sessions.find((s) => s.spec?.conditioning?.prompt === "a red fox in snow, a hat")?.workflowId,
    ).toBe("inpaint");
  }, 180_000);

  it("creates a batch from axes, shows each item's state, cancels it and retries", async () => {
    await openPage("Batches");
    const batches = region("Batches");
    const form = batches.getByRole("form", { name: "New batch" });
    await form.getByLabel("Seed values").fill("21, 22");
    await fillSpec({ Prompt: "a castle", Steps: "200", Width: "64", Height: "64" }, form);
    await form.getByRole("button", { name: "Create batch" }).click();
    const card = batches.getByRole("listitem").first();
    const rows = card.getByRole("row");
    await poll(() => rows.count()).toBe(3);
    await poll(() => card.locator("tbody").textContent(), 60_000).toContain("running");
    const name = ((await card.getAttribute("aria-label")) ?? "").replace("Batch ", "");
    await card.getByRole("button", { name: `Cancel batch ${name}` }).click();
    await poll(() => card.locator(".badge").textContent(), 30_000).toBe("cancelled");
    await screenshot("batches-cancelled");

    await card.getByRole("button", { name: `Retry failed items of batch ${name}` }).click();
    await poll(() => card.locator(".progress").textContent(), 120_000).toContain("2 completed");
    expect(await card.locator(".badge").textContent()).toBe("completed");
    expect(await rows.nth(1).textContent()).toContain("21");
    expect(await rows.nth(2).textContent()).toContain("22");
    await screenshot("batches");
  }, 240_000);

  it("shows the mesh: replicas, health, warm models and device memory", async () => {
    await openPage("Mesh");
    const mesh = region("Mesh");
    const inference = mesh.getByRole("listitem").filter({ hasText: "inference" });
    await poll(() => inference.locator(".badge").textContent()).toBe("serving");
    expect(await inference.textContent()).toContain("tiny-sdxl");
    expect(await mesh.getByRole("listitem").count()).toBe(3);
    await screenshot("mesh");
  }, 60_000);

  it("labels every control, and fits a phone's width on every page", async () => {
    for (const name of ["Generate", "Queue", "Batches", "Gallery", "Mesh"]) {
      await openPage(name);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll("input, select, textarea, button, a[href]")]
          .filter((el) => (el as HTMLElement).offsetParent !== null)
          .filter((el) => {
            const labelled = (el as HTMLInputElement).labels?.length || el.getAttribute("aria-label");
            return !labelled && !(el.textContent ?? "").trim();
          })
          .map((el) => el.outerHTML.slice(0, 120)),
      );
      expect(unlabelled, name).toEqual([]);
    }
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      for (const name of ["Generate", "Queue", "Batches", "Gallery", "Mesh"]) {
        await openPage(name);
        await page.waitForTimeout(300);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${name} is wider than the phone`).toBeLessThanOrEqual(0);
        await screenshot(`phone-${name.toLowerCase()}`);
      }
      await page.emulateMedia({ colorScheme: "dark" });
      await openPage("Generate");
      await screenshot("phone-generate-dark");
    } finally {
      await page.emulateMedia({ colorScheme: "light" });
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  }, 60_000);

  it("loaded nothing from anywhere but the orchestrator", () => {
    const origin = new URL(mesh.url).origin;
    const elsewhere = requested.filter((u) => !u.startsWith(`${origin}/`) && !/^(blob|data):/.test(u));
    expect(requested.length).toBeGreaterThan(10);
    expect(elsewhere).toEqual([]);
  });
});
