import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeTinyControlNet, writeTinyEmbedding, writeTinyLora } from "@dmesh/tiny-model";
import type { Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "../../../test/support/test-mesh.js";
import { type Chromium, chromiumMissing, launchChromium, poll, SCREENSHOTS } from "./support/chromium.js";

const missing = chromiumMissing();
if (missing) console.warn(`web adapter picker tests skipped: ${missing}`);

let mesh: TestMesh;
let browser: Chromium;
let page: Page;

async function screenshot(name: string): Promise<void> {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A 96×96 PNG: a bright square on a dark ground, whose edges canny finds. */
async function squarePng(): Promise<Buffer> {
  const data = Buffer.alloc(96 * 96 * 3, 12);
  for (let y = 24; y < 72; y++)
    for (let x = 24; x < 72; x++) data.fill(235, (y * 96 + x) * 3, (y * 96 + x) * 3 + 3);
  return sharp(data, { raw: { width: 96, height: 96, channels: 3 } })
    .png()
    .toBuffer();
}

describe.skipIf(missing !== undefined)(
  "Generate's LoRA, embedding and ControlNet pickers in Chromium",
  () => {
    beforeAll(async () => {
      mesh = await startTestMesh();
      for (const dir of ["loras", "embeddings"]) mkdirSync(join(mesh.dir, "models", dir));
      await writeTinyLora(join(mesh.dir, "models", "loras", "ink.safetensors"), { layout: "kohya-sdxl" });
      await writeTinyEmbedding(join(mesh.dir, "models", "embeddings", "easy.safetensors"), { kind: "sdxl" });
      await writeTinyControlNet(join(mesh.dir, "models", "controlnet", "canny-xl"), { kind: "sdxl" });
      browser = await launchChromium();
      page = await browser.context.newPage();
    }, 180_000);
    afterAll(async () => {
      await browser?.close();
      await mesh?.dispose();
    });

    it("puts a picked LoRA's tag and an embedding's name into the prompts; a bad weight is refused at its field", async () => {
      await page.goto(mesh.url);
      const gen = page.getByRole("region", { name: "Generate", exact: true });
      const lora = gen.getByLabel("LoRA", { exact: true });
      await poll(() => lora.locator("option").allTextContents()).toEqual(["ink (SDXL)"]);
      // A LoRA added while the page is open appears on Reload.
      await writeTinyLora(join(mesh.dir, "models", "loras", "paper.safetensors"), { layout: "kohya-sd1" });
      await gen.getByRole("button", { name: "Reload LoRAs, embeddings and ControlNets" }).click();
      await poll(() => lora.locator("option").allTextContents()).toEqual(["ink (SDXL)", "paper"]);
      await gen.getByLabel("Prompt", { exact: true }).fill("a lighthouse at dusk");
      await gen.getByLabel("LoRA weight").fill("0.7");
      await gen.getByRole("button", { name: "Add LoRA to prompt" }).click();
      await poll(() => gen.getByLabel("Prompt", { exact: true }).inputValue()).toBe(
        "a lighthouse at dusk <lora:ink:0.7>",
      );
      // Picking it again changes its weight instead of naming it twice.
      await gen.getByLabel("LoRA weight").fill("-0.25");
      await gen.getByRole("button", { name: "Add LoRA to prompt" }).click();
      await poll(() => gen.getByLabel("Prompt", { exact: true }).inputValue()).toBe(
        "a lighthouse at dusk <lora:ink:-0.25>",
      );
      await gen.getByRole("button", { name: "Add to negative prompt" }).click();
      await poll(() => gen.getByLabel("Negative prompt").inputValue()).toBe("easy");

      await gen.getByLabel("LoRA weight").fill("");
      await gen.getByRole("button", { name: "Add LoRA to prompt" }).click();
      const weight = gen.getByLabel("LoRA weight");
      await poll(() => weight.getAttribute("aria-invalid")).toBe("true");
      const describedBy = (await weight.getAttribute("aria-describedby")) ?? "";
      expect(await page.locator(`[id="${describedBy}"]`).textContent()).toBe(
        'LoRA weight: must be a number, got ""',
      );
    }, 120_000);

    it("adds a ControlNet unit, uploads a control image and previews its canny map at the generation size", async () => {
      const gen = page.getByRole("region", { name: "Generate", exact: true });
      await gen.getByLabel("Width", { exact: true }).fill("256");
      await gen.getByLabel("Height", { exact: true }).fill("192");
      await gen.getByRole("button", { name: "Add ControlNet unit" }).click();
      const unit = gen.getByRole("region", { name: "ControlNet unit 1" });
      expect(await unit.getByLabel("Unit 1 model").inputValue()).toBe("canny-xl");
      expect(await unit.getByLabel("Unit 1 preprocessor").inputValue()).toBe("canny");
      await unit.getByLabel("Unit 1 control image").setInputFiles({
        name: "square.png",
        mimeType: "image/png",
        buffer: await squarePng(),
      });
      const map = unit.getByRole("img", { name: "Unit 1 control map preview" });
      await map.waitFor({ timeout: 60_000 });
      await poll(() =>
        map.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]),
      ).toEqual([256, 192]);
      // A canny map is black with white edges: both occur.
      const tones = await map.evaluate((img: HTMLImageElement) => {
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let white = 0;
        let black = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i] === 255) white++;
          else if (data[i] === 0) black++;
        }
        return { white, black };
      });
      expect(tones.white).toBeGreaterThan(50);
      expect(tones.black).toBeGreaterThan(tones.white);
      await screenshot("generate-pickers");
      await page.setViewportSize({ width: 390, height: 844 });
      await screenshot("generate-pickers-phone");
      // Nothing wider than a phone's screen.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await page.setViewportSize({ width: 1280, height: 900 });
    }, 120_000);

    it("shows a preview's refusal and a unit's missing model at the input they are about", async () => {
      const gen = page.getByRole("region", { name: "Generate", exact: true });
      const unit = gen.getByRole("region", { name: "ControlNet unit 1" });
      await unit.getByLabel("Unit 1 low threshold").fill("300");
      await unit.getByRole("button", { name: "Preview control map" }).click();
      const low = unit.getByLabel("Unit 1 low threshold");
      await poll(() => low.getAttribute("aria-invalid")).toBe("true");
      const lowError = page.locator(`[id="${await low.getAttribute("aria-describedby")}"]`);
      expect(await lowError.textContent()).toBe(
        "INVALID_ARGUMENT: preprocessor.threshold_a: low threshold must be in [1, 255], got 300",
      );
      await unit.getByLabel("Unit 1 low threshold").fill("100");

      await unit.getByLabel("Unit 1 model").selectOption("");
      await gen.getByRole("button", { name: "Generate", exact: true }).click();
      const model = unit.getByLabel("Unit 1 model");
      await poll(() => model.getAttribute("aria-invalid")).toBe("true");
      const modelError = page.locator(`[id="${await model.getAttribute("aria-describedby")}"]`);
      expect(await modelError.textContent()).toBe("spec.control_nets[0].model: choose a ControlNet model");
      // Choosing one takes the error away.
      await model.selectOption("canny-xl");
      await poll(() => model.getAttribute("aria-invalid")).toBe(null);
      await screenshot("generate-pickers-errors");
    }, 60_000);
  },
);
