import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinySafetyClassifier, writeTinyUpscaler } from "@dmesh/tiny-model";

/** A temporary directory holding the tiny generated models: real ONNX graphs with seeded weights. */
export interface ModelDirs {
  /** UPSCALE_MODELS_DIR: `tiny-x2` and `tiny-x4`. */
  readonly upscaleRoot: string;
  /** SAFETY_MODEL_DIR. */
  readonly safetyDir: string;
  remove(): void;
}

export async function writeModelDirs(): Promise<ModelDirs> {
  const root = mkdtempSync(join(tmpdir(), "dmesh-postprocess-models-"));
  const upscaleRoot = join(root, "upscale");
  const safetyDir = join(root, "safety");
  await writeTinyUpscaler(join(upscaleRoot, "tiny-x2"), { scale: 2, seed: 7 });
  await writeTinyUpscaler(join(upscaleRoot, "tiny-x4"), { scale: 4, seed: 8 });
  await writeTinySafetyClassifier(safetyDir, { seed: 9 });
  return { upscaleRoot, safetyDir, remove: () => rmSync(root, { recursive: true, force: true }) };
}
