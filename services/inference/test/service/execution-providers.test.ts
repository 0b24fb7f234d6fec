import { deviceSettings, startDevice } from "@dmesh/device";
import { createLogger, loadConfig } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate, smallSpec } from "./support/generate.js";
import { startTestInference, type TestInference } from "./support/test-inference.js";

let service: TestInference;

beforeAll(async () => {
  // This machine has no CUDA libraries: onnxruntime cannot create the CUDA provider.
  service = await startTestInference(
    { sdxl: {}, other: { kind: "sd15" } },
    { EXECUTION_PROVIDERS: "cuda,cpu" },
  );
});
afterAll(async () => {
  await service?.close();
});

const fallbacks = (model: string) =>
  service.logs.filter((l) => l.msg === "execution providers unavailable; fell back" && l.model === model);

describe("execution provider chain", () => {
  it("falls back to CPU, says so once per model however often it loads, and reports the provider used", async () => {
    const first = await generate(service, { spec: smallSpec({ models: { base: "sdxl" } }) });
    expect(first.images).toHaveLength(1);
    expect(first.done?.executionProviders).toEqual(["cpu"]);
    await service.models.unloadModel({ id: "sdxl" });
    await service.models.loadModel({ id: "sdxl" });
    await generate(service, { spec: smallSpec({ models: { base: "other" } }) });
    const lines = fallbacks("sdxl");
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("warn");
    expect(lines[0]?.wanted).toEqual(["cuda", "cpu"]);
    expect(lines[0]?.using).toEqual(["cpu"]);
    expect(JSON.stringify(lines[0]?.unavailable)).toContain("cuda");
    expect(fallbacks("other")).toHaveLength(1);
    const { model } = await service.models.getModel({ id: "sdxl" });
    expect([model?.loaded, model?.executionProviders]).toEqual([true, ["cpu"]]);
  });
});

describe("provider chain from the device service", () => {
  it("asks the device service on this host when EXECUTION_PROVIDERS is empty", async () => {
    const device = await startDevice(
      loadConfig(deviceSettings, { PORT: "0", NVIDIA_SMI: "nvidia-smi-not-installed" }, []),
      createLogger("device", "silent"),
    );
    const inference = await startTestInference(
      { sdxl: {} },
      { EXECUTION_PROVIDERS: "", DEVICE_URL: device.address },
    );
    try {
      const line = inference.logs.find((l) => l.msg === "provider chain");
      expect(line?.from).toBe(device.address);
      expect(line?.device).toBe("cpu");
      expect(line?.chain).toEqual(["cpu"]);
      const result = await generate(inference, { spec: smallSpec({ models: { base: "sdxl" } }) });
      expect(result.done?.executionProviders).toEqual(["cpu"]);
    } finally {
      await inference.close();
      await device.close();
    }
  });
});
