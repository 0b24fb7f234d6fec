import {
  cpuSessionSettings,
  findOnnxFile,
  firstLine,
  ModelContractError,
  OnnxSession,
  readModelJson,
  type TensorSpec,
} from "@dmesh/onnx";

/**
 * A super-resolution model loaded by contract: an ESRGAN-family ONNX export with one float32 NCHW RGB image
 * input and an image output `scale` times larger. `config.json` (optional, basicsr style) may give
 * `scale`, `input_name`, `output_name`, `input_range` ([0, 1] or [0, 255]) and `size_multiple` (tile sides
 * the model needs, e.g. 8 for a SwinIR window).
 */
export interface UpscaleModel {
  readonly name: string;
  readonly scale: number;
  /** Height and width the export fixed, if it did: every tile is padded to it. */
  readonly fixedSize: { readonly height: number; readonly width: number } | undefined;
  /** Tile sides are padded up to a multiple of this. */
  readonly sizeMultiple: number;
  /** One tile, planar RGB [1, 3, height, width] in [0, 1] → [1, 3, height·scale, width·scale] in [0, 1]. */
  runTile(pixels: Float32Array, height: number, width: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Side of the blank tile run at load to check the output and learn the scale when config.json is silent. */
const PROBE_SIDE = 32;

export async function loadUpscaleModel(
  dir: string,
  name: string,
  options: { readonly intraOpThreads?: number; readonly thread?: "worker" | "main" } = {},
): Promise<UpscaleModel> {
  const config = (await readModelJson(dir, "config.json", name, false)) ?? {};
  const file = await findOnnxFile(dir, name);
  const session = await OnnxSession.open(
    name,
    "upscaler",
    file,
    cpuSessionSettings(options.intraOpThreads, options.thread),
  );
  try {
    const input = pickTensor(name, [...session.inputs.values()], config.input_name, "input", "input_name");
    const output = pickTensor(
      name,
      [...session.outputs.values()],
      config.output_name,
      "output",
      "output_name",
    );
    checkImageInput(name, input);
    if (output.type !== "float32") {
      throw new ModelContractError(name, `output "${output.name}" is ${output.type}; expected float32`);
    }
    const range = inputRange(name, config.input_range);
    const sizeMultiple = positiveInteger(name, config, "size_multiple", 1, 64) ?? 1;
    const [, , h, w] = input.shape;
    const fixedSize = typeof h === "number" && typeof w === "number" ? { height: h, width: w } : undefined;

    const runRaw = async (pixels: Float32Array, height: number, width: number) => {
      const feed = range === 1 ? pixels : pixels.map((v) => v * range);
      const result = await session.run({ [input.name]: { data: feed, dims: [1, 3, height, width] } });
      const out = result[output.name];
      if (!out) throw new ModelContractError(name, `returned no output "${output.name}"`);
      return { out, data: range === 1 ? out.data : out.data.map((v) => v / range) };
    };

    const probeH = fixedSize?.height ?? PROBE_SIDE;
    const probeW = fixedSize?.width ?? PROBE_SIDE;
    let probe: Awaited<ReturnType<typeof runRaw>>;
    try {
      probe = await runRaw(new Float32Array(3 * probeH * probeW), probeH, probeW);
    } catch (error) {
      if (error instanceof ModelContractError) throw error;
      throw new ModelContractError(
        name,
        `input "${input.name}" rejects a [1, 3, ${probeH}, ${probeW}] image: ${firstLine(error)}`,
      );
    }
    const scale = probedScale(name, output.name, probe.out.dims, probeH, probeW);
    const configured = positiveInteger(name, config, "scale", 1, 16);
    if (configured !== undefined && configured !== scale) {
      throw new ModelContractError(
        name,
        `config.json says scale ${configured} but the model upscales ×${scale}`,
      );
    }
    return {
      name,
      scale,
      fixedSize,
      sizeMultiple,
      async runTile(pixels, height, width) {
        const { out, data } = await runRaw(pixels, height, width);
        const [, , oh, ow] = out.dims;
        if (oh !== height * scale || ow !== width * scale) {
          throw new ModelContractError(
            name,
            `output "${output.name}" is [${out.dims.join(", ")}] for a ${height}x${width} tile; expected ×${scale}`,
          );
        }
        return data;
      },
      release: () => session.release(),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

function pickTensor(
  model: string,
  tensors: readonly TensorSpec[],
  configured: unknown,
  kind: "input" | "output",
  key: string,
): TensorSpec {
  const names = tensors.map((t) => `"${t.name}"`).join(", ");
  if (configured !== undefined) {
    const found = tensors.find((t) => t.name === configured);
    if (!found) {
      throw new ModelContractError(
        model,
        `config.json ${key} ${JSON.stringify(configured)} is not an ${kind} (it has ${names})`,
      );
    }
    return found;
  }
  const [first] = tensors;
  if (!first) throw new ModelContractError(model, `has no ${kind}`);
  if (kind === "input" && tensors.length > 1) {
    throw new ModelContractError(
      model,
      `has ${tensors.length} inputs (${names}); name the image in config.json ${key}`,
    );
  }
  return first;
}

/** float32, rank 4, 3 channels in dimension 1 (NCHW), not a channels-last export. */
function checkImageInput(model: string, input: TensorSpec): void {
  const shape = `[${input.shape.join(", ")}]`;
  const problem =
    input.type !== "float32"
      ? `is ${input.type}`
      : input.shape.length !== 4
        ? `has shape ${shape}`
        : typeof input.shape[1] === "number" && input.shape[1] !== 3
          ? `has ${input.shape[1]} channels in ${shape}`
          : typeof input.shape[1] !== "number" && input.shape[3] === 3
            ? `looks channels-last: ${shape}`
            : undefined;
  if (problem) {
    throw new ModelContractError(
      model,
      `input "${input.name}" ${problem}; expected float32 NCHW [batch, 3, height, width]`,
    );
  }
}

function probedScale(model: string, output: string, dims: readonly number[], h: number, w: number): number {
  const [n, c, oh = 0, ow = 0] = dims;
  const scale = oh / h;
  if (dims.length !== 4 || n !== 1 || c !== 3 || !Number.isInteger(scale) || scale < 1 || ow !== w * scale) {
    throw new ModelContractError(
      model,
      `output "${output}" is [${dims.join(", ")}] for a [1, 3, ${h}, ${w}] input; expected [1, 3, ${h}·s, ${w}·s]`,
    );
  }
  return scale;
}

function inputRange(model: string, value: unknown): number {
  if (value === undefined) return 1;
  if (Array.isArray(value) && value[0] === 0 && (value[1] === 1 || value[1] === 255)) return value[1];
  throw new ModelContractError(
    model,
    `config.json input_range must be [0, 1] or [0, 255], got ${JSON.stringify(value)}`,
  );
}

function positiveInteger(
  model: string,
  config: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const value = config[key];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ModelContractError(
      model,
      `config.json ${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}
