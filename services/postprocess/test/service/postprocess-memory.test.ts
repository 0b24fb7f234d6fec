import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { PostprocessService, UpscaleKernel } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The service runs as its own process, as in production, so that its RSS is its own and not the test's.
const MAIN = join(dirname(fileURLToPath(import.meta.url)), "../../dist/main.js");
const linux = process.platform === "linux";

const REQUESTS = 8;
const SIDE = 2048;
/** Each request: a 2048² input plus its 4096² upscale = 20 Mpx; the budget lets two run at once. */
const PIXEL_BUDGET = 2 * (SIDE * SIDE * 5);
/**
 * The bound this test holds the service to, with all eight requests in flight at once. Measured on 2
 * cores: idle 86 MB; peak 253 MB for one request alone, 480-520 MB for the eight under this budget, and
 * 820-950 MB for the eight with a budget that admits them all at once.
 */
const PEAK_RSS_BOUND_MB = 750;

let child: ChildProcess | undefined;
let address = "";

function statusKb(pid: number, key: "VmRSS" | "VmHWM"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  if (!line?.[1]) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(line[1]);
}

beforeAll(async () => {
  if (!linux) return;
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npm run build)`);
  child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      PIXEL_BUDGET: String(PIXEL_BUDGET),
      MAX_MESSAGE_BYTES: String(4 * 1024 * 1024),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  address = await new Promise<string>((resolve, reject) => {
    child?.once("exit", (code) => reject(new Error(`postprocess exited with ${code} before listening`)));
    lines.on("line", (line) => {
      const entry = JSON.parse(line) as { address?: string };
      if (entry.address) resolve(entry.address);
    });
  });
});
afterAll(() => {
  child?.kill("SIGKILL");
});

function image(seed: number) {
  const data = new Uint8Array(SIDE * SIDE * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 17 + (i >> 13)) & 0xff;
  return data;
}

describe.skipIf(!linux)("memory under concurrent large requests", () => {
  it(`keeps the service's peak RSS under ${PEAK_RSS_BOUND_MB} MB with ${REQUESTS} 2048² → 4096² requests at once`, async () => {
    const pid = child?.pid as number;
    const transport = createGrpcTransport({ address });
    const client = createClient(PostprocessService, transport);
    const idleMb = statusKb(pid, "VmRSS") / 1024;
    try {
      const results = await Promise.all(
        Array.from({ length: REQUESTS }, async (_, i) => {
          const data = image(i);
          async function* upload() {
            const request = {
              image: { encoding: ImageEncoding.RAW, width: SIDE, height: SIDE, channels: 3 },
              upscale: { factor: 2, kernel: UpscaleKernel.LANCZOS3 },
              encode: { encoding: ImageEncoding.JPEG, quality: 80 },
            };
            yield { part: { case: "start" as const, value: { request, imageBytes: BigInt(data.length) } } };
            for (let at = 0; at < data.length; at += 1 << 20) {
              yield { part: { case: "chunk" as const, value: data.subarray(at, at + (1 << 20)) } };
            }
          }
          let bytes = 0;
          let width = 0;
          for await (const m of client.processStream(upload())) {
            if (m.part.case === "result") width = m.part.value.image?.width ?? 0;
            else if (m.part.case === "chunk") bytes += m.part.value.length;
          }
          return { width, bytes };
        }),
      );
      for (const r of results) expect(r.width).toBe(2 * SIDE);
      const peakMb = statusKb(pid, "VmHWM") / 1024;
      console.log(
        `postprocess RSS: idle ${idleMb.toFixed(0)} MB, peak ${peakMb.toFixed(0)} MB for ${REQUESTS} concurrent 2048² → 4096² requests (budget ${PIXEL_BUDGET / 2 ** 20} Mpx)`,
      );
      expect(peakMb).toBeLessThan(PEAK_RSS_BOUND_MB);
    } finally {
      transport.close();
    }
  });
});
