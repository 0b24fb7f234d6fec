import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { ImageEncoding, type ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type {
  DenoiseCheckpoint,
  GeneratedImage,
  GenerateRequest,
  GenerateRequestSchema,
  GenerationDone,
  Progress,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { FIELD_TRAILER } from "@dmesh/runtime";
import type { TestInference } from "./test-inference.js";

/** A spec as a plain object (what tests spread and override). */
export type SpecInit = Exclude<MessageInitShape<typeof GenerationSpecSchema>, GenerationSpec>;
export type RequestInit = Exclude<MessageInitShape<typeof GenerateRequestSchema>, GenerateRequest>;

/** A small, fast request: 64x64, 4 Euler steps, a fixed seed; `over` replaces whole sub-messages. */
export function smallSpec(over: SpecInit = {}): SpecInit {
  return {
    conditioning: { prompt: "a red fox in the snow, (detailed:1.2)", negativePrompt: "blurry" },
    size: { width: 64, height: 64 },
    scheduler: { steps: 4 },
    params: { seed: 42n },
    ...over,
  };
}

/** Everything one Generate stream said, in order. */
export interface GenerateEvents {
  readonly progress: Progress[];
  readonly checkpoints: DenoiseCheckpoint[];
  readonly images: GeneratedImage[];
  readonly done: GenerationDone | undefined;
}

export async function generate(
  service: TestInference,
  request: RequestInit,
  options: { signal?: AbortSignal; onProgress?: (p: Progress, events: GenerateEvents) => void } = {},
): Promise<GenerateEvents> {
  const events = {
    progress: [] as Progress[],
    checkpoints: [] as DenoiseCheckpoint[],
    images: [] as GeneratedImage[],
    done: undefined as GenerationDone | undefined,
  };
  for await (const res of service.inference.generate(request, { signal: options.signal })) {
    const e = res.event;
    if (e.case === "progress") {
      events.progress.push(e.value);
      options.onProgress?.(e.value, events);
    } else if (e.case === "checkpoint") events.checkpoints.push(e.value);
    else if (e.case === "image") events.images.push(e.value);
    else if (e.case === "done") events.done = e.value;
  }
  return events;
}

/** The RGB bytes of every image of a request, in index order. */
export async function imagesOf(
  service: TestInference,
  spec: SpecInit,
  extra: Omit<RequestInit, "spec"> = {},
): Promise<Uint8Array[]> {
  const events = await generate(service, { spec, ...extra });
  return [...events.images].sort((a, b) => a.index - b.index).map((i) => i.image?.data ?? new Uint8Array());
}

/** The error a call failed with: its gRPC code and the request field the service named. */
export async function failure(
  call: Promise<unknown>,
): Promise<{ code: Code; field: string | null; message: string }> {
  try {
    await call;
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: ce.code, field: ce.metadata.get(FIELD_TRAILER), message: ce.rawMessage };
  }
  throw new Error("the call succeeded");
}

/** A raw RGB image with a smooth pattern (so the VAE has something to encode). */
export function rawImage(width: number, height: number, seed = 0): MessageInitShape<typeof ImageSchema> {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = (x * 4 + seed * 40) % 256;
      data[i + 1] = (y * 4 + seed * 20) % 256;
      data[i + 2] = ((x + y) * 2) % 256;
    }
  }
  return { encoding: ImageEncoding.RAW, data, width, height, channels: 3 };
}

/** A raw one-channel mask: white (repaint) inside the rectangle, black outside. */
export function rawMask(
  width: number,
  height: number,
  box: { x0: number; y0: number; x1: number; y1: number },
): MessageInitShape<typeof ImageSchema> {
  const data = new Uint8Array(width * height);
  for (let y = box.y0; y < box.y1; y++) for (let x = box.x0; x < box.x1; x++) data[y * width + x] = 255;
  return { encoding: ImageEncoding.RAW, data, width, height, channels: 1 };
}

export function same(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

export { Code };
