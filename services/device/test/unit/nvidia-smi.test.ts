import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { NVIDIA_SMI_ARGS, parseNvidiaSmiCsv, queryNvidiaSmi } from "../../src/detect/nvidia-smi.js";
import { MIB } from "../../src/units/bytes.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

describe("parseNvidiaSmiCsv", () => {
  it("asks for the fields it parses, without units or header", () => {
    expect(NVIDIA_SMI_ARGS).toEqual([
      "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,driver_version",
      "--format=csv,noheader,nounits",
    ]);
  });

  it("reads a 4-GPU node", () => {
    const gpus = parseNvidiaSmiCsv(fixture("nvidia-smi-4x-a100.csv"));
    expect(gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);
    expect(gpus[0]).toEqual({
      index: 0,
      uuid: "GPU-3f1c2a7e-9b4d-4e21-8c6a-0d5e7f9a1b23",
      name: "NVIDIA A100-SXM4-80GB",
      memoryTotalBytes: 81920 * MIB,
      memoryUsedBytes: 62315 * MIB,
      memoryFreeBytes: 18739 * MIB,
      utilization: 0.97,
      temperatureC: 64,
      driverVersion: "535.104.12",
    });
    expect(gpus[1]?.memoryFreeBytes).toBe(81050 * MIB);
  });

  it("leaves out [N/A], [Not Supported] and [Insufficient Permissions] values", () => {
    const [rtx, gtx] = parseNvidiaSmiCsv(fixture("nvidia-smi-geforce-na.csv"));
    expect(rtx).toMatchObject({ name: "NVIDIA GeForce RTX 4090", utilization: 0.12, temperatureC: 41 });
    expect(gtx?.utilization).toBeUndefined();
    expect(gtx?.temperatureC).toBeUndefined();
    expect(gtx?.memoryTotalBytes).toBe(11264 * MIB);

    const [mig] = parseNvidiaSmiCsv(fixture("nvidia-smi-mig-unprivileged.csv"));
    expect(mig).toMatchObject({
      name: "NVIDIA A100-SXM4-80GB",
      temperatureC: 47,
      driverVersion: "535.161.08",
    });
    expect(mig?.memoryTotalBytes).toBeUndefined();
    expect(mig?.memoryFreeBytes).toBeUndefined();
    expect(mig?.utilization).toBeUndefined();

    const [k80] = parseNvidiaSmiCsv(fixture("nvidia-smi-not-supported.csv"));
    expect(k80).toMatchObject({ name: "Tesla K80", memoryFreeBytes: 11439 * MIB, temperatureC: 35 });
    expect(k80?.utilization).toBeUndefined();
    expect(parseNvidiaSmiCsv(fixture("nvidia-smi-h100.csv"))[0]?.memoryTotalBytes).toBe(81559 * MIB);
  });

  it("keeps a comma inside a product name, and rejects lines it cannot read", () => {
    const [gpu] = parseNvidiaSmiCsv(
      "0, GPU-1, NVIDIA RTX A6000, Ada Generation, 49140, 10, 48500, 3, 40, 550.54.14\n",
    );
    expect(gpu).toMatchObject({ name: "NVIDIA RTX A6000, Ada Generation", memoryUsedBytes: 10 * MIB });
    expect(() => parseNvidiaSmiCsv("0, GPU-1, NVIDIA A10\n")).toThrow(/line 1 has 3 fields, expected 9/);
    expect(() => parseNvidiaSmiCsv("x, GPU-1, A10, 1, 1, 1, 1, 1, 1")).toThrow(/lacks an index/);
    expect(parseNvidiaSmiCsv("\n")).toEqual([]);
  });
});

describe("queryNvidiaSmi spawns for real", () => {
  it("on this host: a missing nvidia-smi means no GPUs and no problem; a present one lists GPUs", async () => {
    const result = await queryNvidiaSmi();
    if (result.problem === undefined && result.gpus.length === 0) {
      expect(result).toEqual({ gpus: [] });
    } else {
      expect(result.gpus.length + (result.problem ? 1 : 0)).toBeGreaterThan(0);
    }
  });

  it("reports a command that is not there as no GPUs, without a problem", async () => {
    expect(await queryNvidiaSmi({ command: "nvidia-smi-that-does-not-exist" })).toEqual({ gpus: [] });
  });

  it("reports a failing command as a problem", async () => {
    const result = await queryNvidiaSmi({
      command: process.execPath,
      args: ["-e", "console.error('NVIDIA-SMI has failed'); process.exit(9)"],
    });
    expect(result.gpus).toEqual([]);
    expect(result.problem).toMatch(/failed \(exit 9\): NVIDIA-SMI has failed/);
  });

  it("stops waiting after the timeout", async () => {
    const result = await queryNvidiaSmi({
      command: process.execPath,
      args: ["-e", "setTimeout(() => {}, 10000)"],
      timeoutMs: 200,
    });
    expect(result.problem).toMatch(/did not answer within 200 ms/);
  });

  it("reports output it cannot parse as a problem", async () => {
    const result = await queryNvidiaSmi({
      command: process.execPath,
      args: ["-e", "console.log('No devices were found, sorry')"],
    });
    expect(result).toMatchObject({
      gpus: [],
      problem: expect.stringMatching(/output not understood: line 1 has 2 fields/),
    });
  });

  it("rejects when aborted", async () => {
    const controller = new AbortController();
    const pending = queryNvidiaSmi({
      command: process.execPath,
      args: ["-e", "setTimeout(() => {}, 10000)"],
      signal: controller.signal,
    });
    controller.abort(new Error("shutting down"));
    await expect(pending).rejects.toThrow("shutting down");
  });
});
