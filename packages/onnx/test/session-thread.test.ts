import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { cpuSessionSettings, ModelCache, OnnxSession, type TensorFeed, type TensorResult } from "@dmesh/onnx";
import { writeTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./support/tiny-models.js";

let root: Awaited<ReturnType<typeof tempDir>>;
const file = (component: string) => join(root.path, "sdxl", component, "model.onnx");

beforeAll(async () => {
  root = await tempDir("thread");
  await writeTinyModel(join(root.path, "sdxl"), { inputIdsType: "int64" });
});
afterAll(() => root?.remove());

/** A 1024×1024 decode: one run of the tiny VAE that takes a good part of a second on one thread. */
const largeLatents = (): Record<string, TensorFeed> => ({
  latent_sample: {
    data: Float32Array.from({ length: 4 * 128 * 128 }, (_, i) => Math.sin(i / 97)),
    dims: [1, 4, 128, 128],
  },
});

const ids = (): Record<string, TensorFeed> => ({
  input_ids: { data: Int32Array.from({ length: 77 }, (_, i) => (i < 5 ? 30 + i : 897)), dims: [1, 77] },
});

/** What happened first: the run's end, or `turns` turns of the event loop begun after the run was asked for. */
async function orderOfRunAndTurns(session: OnnxSession, turns: number): Promise<string[]> {
  const events: string[] = [];
  const run = session.run(largeLatents()).then(() => events.push("run ended"));
  await new Promise<void>((resolve) => {
    let left = turns;
    const turn = () => {
      if (--left === 0) {
        events.push(`${turns} turns`);
        resolve();
      } else setImmediate(turn);
    };
    setImmediate(turn);
  });
  await run;
  return events;
}

/** Each output's bytes as a digest (large outputs compare fast and fail short). */
function bytesOf(results: Record<string, TensorResult>): Record<string, string> {
  return Object.fromEntries(Object.entries(results).map(([name, r]) => [name, digest(r.data)]));
}

function digest(data: ArrayBufferView): string {
  return createHash("sha256")
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest("hex");
}

describe("OnnxSession on its worker thread", () => {
  it("leaves the event loop turning while the model runs; on the main thread the run holds it", async () => {
    const threaded = await OnnxSession.open(
      "sdxl",
      "vae_decoder",
      file("vae_decoder"),
      cpuSessionSettings(1),
    );
    const onLoop = await OnnxSession.open(
      "sdxl",
      "vae_decoder",
      file("vae_decoder"),
      cpuSessionSettings(1, "main"),
    );
    try {
      expect(await orderOfRunAndTurns(threaded, 20)).toEqual(["20 turns", "run ended"]);
      expect(await orderOfRunAndTurns(onLoop, 20)).toEqual(["run ended", "20 turns"]);
    } finally {
      await Promise.all([threaded.release(), onLoop.release()]);
    }
  });

  it("returns the same bytes as a run on the main thread, and leaves the caller's feeds as they were", async () => {
    for (const [component, feeds, outputs] of [
      ["text_encoder_2", ids(), undefined],
      ["text_encoder_2", ids(), ["text_embeds", "hidden_states.1"]],
      ["vae_decoder", largeLatents(), undefined],
    ] as const) {
      const threaded = await OnnxSession.open("sdxl", component, file(component), cpuSessionSettings(1));
      const onLoop = await OnnxSession.open(
        "sdxl",
        component,
        file(component),
        cpuSessionSettings(1, "main"),
      );
      try {
        const before = Object.values(feeds).map((f) => digest(f.data));
        const options = outputs ? { outputs } : {};
        const a = await threaded.run(feeds, options);
        const b = await onLoop.run(feeds, options);
        expect(Object.keys(a)).toEqual(Object.keys(b));
        expect(bytesOf(a)).toEqual(bytesOf(b));
        expect(Object.values(a).map((r) => r.dims)).toEqual(Object.values(b).map((r) => r.dims));
        expect(Object.values(feeds).map((f) => digest(f.data))).toEqual(before);
      } finally {
        await Promise.all([threaded.release(), onLoop.release()]);
      }
    }
  });

  it("reads a feed array rewritten in place between runs afresh each run", async () => {
    const session = await OnnxSession.open("sdxl", "vae_decoder", file("vae_decoder"), cpuSessionSettings(1));
    try {
      const feed = { data: new Float32Array(4 * 8 * 8).fill(0.25), dims: [1, 4, 8, 8] };
      const first = (await session.run({ latent_sample: feed })).sample?.data.slice();
      feed.data.fill(-0.5);
      const second = (await session.run({ latent_sample: feed })).sample?.data;
      feed.data.fill(0.25);
      const third = (await session.run({ latent_sample: feed })).sample?.data;
      expect(second).not.toEqual(first);
      expect(third).toEqual(first);
    } finally {
      await session.release();
    }
  });

  it("runs concurrent calls one after another, each with its own result", async () => {
    const session = await OnnxSession.open("sdxl", "vae_decoder", file("vae_decoder"), cpuSessionSettings(1));
    try {
      const feed = (v: number) => ({
        latent_sample: { data: new Float32Array(4 * 8 * 8).fill(v), dims: [1, 4, 8, 8] },
      });
      const alone = await Promise.all(
        [0.1, 0.2, 0.3].map(async (v) => (await session.run(feed(v))).sample?.data),
      );
      const together = await Promise.all([0.1, 0.2, 0.3].map((v) => session.run(feed(v))));
      expect(together.map((r) => r.sample?.data)).toEqual(alone);
    } finally {
      await session.release();
    }
  });

  it("throws onnxruntime's error with its message, and stops running once released", async () => {
    const threaded = await OnnxSession.open(
      "sdxl",
      "text_encoder",
      file("text_encoder"),
      cpuSessionSettings(1),
    );
    const onLoop = await OnnxSession.open(
      "sdxl",
      "text_encoder",
      file("text_encoder"),
      cpuSessionSettings(1, "main"),
    );
    const bad = { input_ids: { data: new Int32Array(77), dims: [1, 7, 11] } };
    const fromThread = await threaded.run(bad).catch((e: unknown) => e);
    const fromLoop = await onLoop.run(bad).catch((e: unknown) => e);
    expect(fromThread).toBeInstanceOf(Error);
    expect((fromThread as Error).message).toBe((fromLoop as Error).message);
    expect((fromThread as Error).name).toBe((fromLoop as Error).name);
    // The thread still serves after a failed run.
    expect(Object.keys(await threaded.run(ids()))).toEqual(Object.keys(await onLoop.run(ids())));
    await Promise.all([threaded.release(), onLoop.release()]);
    await expect(threaded.run(ids())).rejects.toThrow(
      /onnxruntime thread of model "sdxl" text_encoder exited/,
    );
  });

  it("ends a session's thread when a model cache evicts it", async () => {
    // Each session is a worker thread (and onnxruntime's pool threads): the process's thread count shows them.
    const threads = () => readdirSync("/proc/self/task").length;
    const cache = new ModelCache<OnnxSession[]>({
      capacity: 1,
      load: (key) =>
        Promise.all(
          ["text_encoder", "text_encoder_2", "vae_decoder"].map((c) =>
            OnnxSession.open(key, c, file(c), cpuSessionSettings(1)),
          ),
        ),
      release: async (sessions) => {
        await Promise.all(sessions.map((s) => s.release()));
      },
    });
    const before = threads();
    const first = await cache.use("first", async (sessions) => {
      expect(threads()).toBeGreaterThanOrEqual(before + 3);
      return Object.keys(await (sessions[2] as OnnxSession).run(largeLatents()));
    });
    expect(first).toEqual(["sample"]);
    const loaded = threads();
    await cache.use("second", async () => undefined);
    // "first" went when "second" came: its three threads are gone, "second"'s three are there.
    await eventuallyTrue(() => cache.keys().join() === "second" && threads() <= loaded);
    await cache.clear();
    await eventuallyTrue(() => threads() <= loaded - 3);
  });
});

async function eventuallyTrue(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(check()).toBe(true);
}
