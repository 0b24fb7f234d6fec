import { basename } from "node:path";
import {
  cpuSessionSettings,
  findOnnxFile,
  firstLine,
  ModelContractError,
  OnnxSession,
  readModelJson,
  type TensorSpec,
} from "@dmesh/onnx";
import type { RawImage } from "../image/raw-image.js";
import { createImagePreprocessor } from "./image-preprocessor.js";

/**
 * An image classifier loaded by contract, the shape of a transformers image-classification ONNX export
 * (ViT, CLIP vision + head, a CNN): `config.json` with `id2label`, `preprocessor_config.json`, and a model
 * taking float32 `pixel_values` [batch, 3, H, W] to `logits` [batch, labels].
 */
export interface SafetyClassifier {
  /** The model directory's name, reported with every verdict. */
  readonly name: string;
  readonly labels: readonly string[];
  /** The labels whose probabilities add up to the unsafe score. */
  readonly unsafeLabels: readonly string[];
  /** Probability that the image is unsafe: softmax over the labels (sigmoid for multi-label heads). */
  score(image: RawImage): Promise<number>;
  release(): Promise<void>;
}

export interface SafetyClassifierOptions {
  /** onnxruntime threads; 0 or none: one per core. */
  readonly intraOpThreads?: number;
  /** Where the model runs: its own worker thread (the default), or the event loop. */
  readonly thread?: "worker" | "main";
  /** Label names (any case) that count as unsafe; at least one of the model's labels must be one. */
  readonly unsafeLabels: readonly string[];
}

export async function loadSafetyClassifier(
  dir: string,
  options: SafetyClassifierOptions,
): Promise<SafetyClassifier> {
  const name = basename(dir);
  const config = (await readModelJson(dir, "config.json", name, true)) ?? {};
  const preprocessor = createImagePreprocessor(
    name,
    (await readModelJson(dir, "preprocessor_config.json", name, true)) ?? {},
  );
  const labels = labelsOf(name, config.id2label);
  const wanted = new Set(options.unsafeLabels.map((l) => l.toLowerCase()));
  const unsafe = labels.flatMap((label, i) => (wanted.has(label.toLowerCase()) ? [i] : []));
  if (unsafe.length === 0 || unsafe.length === labels.length) {
    throw new ModelContractError(
      name,
      `config.json id2label (${labels.join(", ")}) must hold both safe labels and unsafe ones (${[...wanted].join(", ")})`,
    );
  }
  const multiLabel = config.problem_type === "multi_label_classification";

  const session = await OnnxSession.open(
    name,
    "safety classifier",
    await findOnnxFile(dir, name),
    cpuSessionSettings(options.intraOpThreads, options.thread),
  );
  try {
    const inputs = [...session.inputs.values()];
    const outputs = [...session.outputs.values()];
    const input = inputs.find((t) => t.name === "pixel_values") ?? onlyOne(name, inputs);
    const output = outputs.find((t) => t.name === "logits") ?? outputs[0];
    checkPixelValues(name, input, preprocessor.size);
    if (output?.type !== "float32") {
      throw new ModelContractError(name, `needs a float32 logits output (it has ${describe(outputs)})`);
    }
    const run = async (image: RawImage) => {
      const pixels = await preprocessor.toPixelValues(image);
      const logits = (await session.run({ [input.name]: pixels }))[output.name];
      if (logits?.dims.length !== 2 || logits.dims[1] !== labels.length) {
        throw new ModelContractError(
          name,
          `output "${output.name}" is [${logits?.dims.join(", ") ?? ""}]; expected [1, ${labels.length}] for the labels of config.json`,
        );
      }
      return logits.data;
    };
    const score = async (image: RawImage) => {
      const logits = await run(image);
      if (multiLabel) return Math.max(...unsafe.map((i) => 1 / (1 + Math.exp(-(logits[i] as number)))));
      const top = Math.max(...logits);
      const exp = Array.from(logits, (v) => Math.exp(v - top));
      const total = exp.reduce((a, b) => a + b, 0);
      return unsafe.reduce((sum, i) => sum + (exp[i] as number), 0) / total;
    };
    // A gray image through the whole path: preprocessing, input and output shapes all agree.
    const side = 64;
    await score({
      data: new Uint8Array(side * side * 3).fill(128),
      width: side,
      height: side,
      channels: 3,
    }).catch((error: unknown) => {
      if (error instanceof ModelContractError) throw error;
      throw new ModelContractError(
        name,
        `input "${input.name}" rejects a preprocessed image: ${firstLine(error)}`,
      );
    });
    return {
      name,
      labels,
      unsafeLabels: unsafe.map((i) => labels[i] as string),
      score,
      release: () => session.release(),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

function labelsOf(model: string, id2label: unknown): string[] {
  const entries = typeof id2label === "object" && id2label !== null ? Object.entries(id2label) : [];
  const labels: string[] = [];
  for (const [id, label] of entries) {
    const i = Number(id);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof label !== "string") {
      throw new ModelContractError(
        model,
        `config.json id2label must map "0".."${entries.length - 1}" to names`,
      );
    }
    labels[i] = label;
  }
  if (labels.length < 2 || labels.some((l) => l === undefined)) {
    throw new ModelContractError(model, "config.json id2label must name at least two labels, 0..n-1");
  }
  return labels;
}

function onlyOne(model: string, inputs: readonly TensorSpec[]): TensorSpec {
  const [only] = inputs;
  if (!only || inputs.length !== 1) {
    throw new ModelContractError(
      model,
      `has no "pixel_values" input and not exactly one input (${describe(inputs)})`,
    );
  }
  return only;
}

/** float32 [batch, 3, H, W], H and W matching the preprocessor's output when the export fixed them. */
function checkPixelValues(
  model: string,
  input: TensorSpec,
  size: { height: number; width: number } | undefined,
): void {
  const [, c, h, w] = input.shape;
  const fixed = typeof h === "number" && typeof w === "number";
  const problem =
    input.type !== "float32" || input.shape.length !== 4 || (typeof c === "number" && c !== 3)
      ? "expected float32 [batch, 3, height, width]"
      : fixed && !size
        ? "has a fixed size but preprocessor_config.json gives none (a shortest edge without a center crop)"
        : fixed && size && (size.height !== h || size.width !== w)
          ? `does not match preprocessor_config.json, which makes ${size.height}x${size.width}`
          : undefined;
  if (problem) {
    throw new ModelContractError(
      model,
      `input "${input.name}" is ${input.type} [${input.shape.join(", ")}]: ${problem}`,
    );
  }
}

function describe(tensors: readonly TensorSpec[]): string {
  return tensors.map((t) => `"${t.name}" ${t.type} [${t.shape.join(", ")}]`).join(", ") || "none";
}
