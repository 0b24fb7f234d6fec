import { join } from "node:path";
import { cpuSessionSettings, ModelCache, ModelContractError, OnnxSession, RunClock } from "@dmesh/onnx";
import { writeTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./support/tiny-models.js";

let root: Awaited<ReturnType<typeof tempDir>>;
let textEncoder: string;

beforeAll(async () => {
  root = await tempDir("session");
  await writeTinyModel(join(root.path, "sd15"), { kind: "sd15" });
  textEncoder = join(root.path, "sd15", "text_encoder", "model.onnx");
});
afterAll(() => root?.remove());

const ids = () => ({
  input_ids: { data: Int32Array.from({ length: 77 }, (_, i) => (i < 3 ? 10 + i : 897)), dims: [1, 77] },
});

describe("OnnxSession", () => {
  it("falls back along the provider chain to CPU, saying which provider failed and why", async () => {
    // This machine has no CUDA libraries: onnxruntime cannot create the CUDA provider.
    const session = await OnnxSession.open("sd15", "text_encoder", textEncoder, {
      ...cpuSessionSettings(1),
      executionProviders: ["cuda", "cpu"],
    });
    expect(session.providers).toEqual(["cpu"]);
    expect(session.fallbacks).toEqual([
      { component: "text_encoder", provider: "cuda", reason: expect.stringContaining("Cuda") },
    ]);
    await session.release();
  });

  it("runs typed arrays to float32 outputs, relabels requested outputs, and counts run time", async () => {
    const session = await OnnxSession.open("sd15", "text_encoder", textEncoder, cpuSessionSettings(1));
    expect(session.requireInput("input_ids", ["int32", "int64"]).shape).toEqual([
      "batch_size",
      "sequence_length",
    ]);
    const clock = new RunClock();
    const all = await session.run(ids(), { clock });
    const one = await session.run(ids(), { clock, outputs: ["hidden_states.1"] });
    expect(Object.keys(one)).toEqual(["hidden_states.1"]);
    expect(one["hidden_states.1"]?.dims).toEqual([1, 77, 32]);
    expect(Buffer.from(one["hidden_states.1"]?.data.buffer ?? new ArrayBuffer(0))).toEqual(
      Buffer.from(all["hidden_states.1"]?.data.buffer ?? new ArrayBuffer(1)),
    );
    expect(clock.calls).toBe(2);
    expect(clock.seconds).toBeGreaterThan(0);
    expect(() => session.requireInput("pixel_values", ["float32"])).toThrow(
      'model "sd15": text_encoder has no input "pixel_values" (it has input_ids)',
    );
    await session.release();
  });

  it("refuses a file onnxruntime cannot load with a contract error naming it", async () => {
    const error = await OnnxSession.open(
      "broken",
      "unet",
      join(root.path, "sd15", "model_index.json"),
      cpuSessionSettings(),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelContractError);
    expect((error as Error).message).toMatch(
      /^model "broken": cannot load unet: .*model_index.json cannot be loaded by onnxruntime/,
    );
  });
});

describe("ModelCache", () => {
  function counting(capacity: number, extra: { maxBytes?: number; fail?: string } = {}) {
    const loads: string[] = [];
    const releases: string[] = [];
    const cache = new ModelCache<{ key: string; bytes: number }>({
      capacity,
      ...(extra.maxBytes === undefined ? {} : { maxBytes: extra.maxBytes }),
      load: async (key) => {
        loads.push(key);
        await new Promise((r) => setTimeout(r, 5));
        if (key === extra.fail) throw new Error(`cannot load ${key}`);
        return { key, bytes: key.length * 100 };
      },
      release: async (value) => {
        releases.push(value.key);
      },
      bytes: (value) => value.bytes,
    });
    return { cache, loads, releases };
  }

  it("shares one load among concurrent users and releases idle entries least recently used first", async () => {
    const { cache, loads, releases } = counting(2);
    await Promise.all([
      cache.use("a", async () => 1),
      cache.use("a", async () => 2),
      cache.use("b", async () => 3),
    ]);
    expect(loads).toEqual(["a", "b"]);
    await cache.use("a", async () => 0);
    await cache.use("c", async () => 0);
    expect(cache.keys()).toEqual(["a", "c"]);
    expect(releases).toEqual(["b"]);
    await cache.use("b", async () => 0);
    expect(loads).toEqual(["a", "b", "c", "b"]);
    await cache.clear();
    expect(releases.sort()).toEqual(["a", "b", "b", "c"]);
  });

  it("never releases an entry in use: it goes once its last user is done", async () => {
    const { cache, releases } = counting(1);
    const held = await cache.acquire("a");
    await cache.use("b", async () => 0);
    await new Promise((r) => setTimeout(r, 0));
    expect(releases).toEqual(["b"]);
    expect(cache.keys()).toEqual(["a"]);
    expect(await cache.delete("a")).toBe(false);
    expect(cache.info("a")).toMatchObject({ users: 1, loaded: true, bytes: 100 });
    const other = await cache.acquire("c");
    held.release();
    await new Promise((r) => setTimeout(r, 0));
    expect(releases).toEqual(["b", "a"]);
    other.release();
  });

  it("counts bytes and releases idle entries beyond a byte budget", async () => {
    const { cache, releases } = counting(10, { maxBytes: 500 });
    await cache.use("aa", async () => 0);
    await cache.use("bbb", async () => 0);
    expect(cache.totalBytes).toBe(500);
    await cache.use("c", async () => 0);
    await new Promise((r) => setTimeout(r, 0));
    expect(releases).toEqual(["aa"]);
    expect(cache.totalBytes).toBe(400);
  });

  it("does not keep a failed load: the next user tries again", async () => {
    const { cache, loads } = counting(2, { fail: "bad" });
    await expect(cache.use("bad", async () => 0)).rejects.toThrow("cannot load bad");
    await expect(cache.use("bad", async () => 0)).rejects.toThrow("cannot load bad");
    expect(loads).toEqual(["bad", "bad"]);
    expect(cache.keys()).toEqual([]);
  });
});
