import { existsSync, readFileSync, statSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { InvalidArgumentError, NotFoundError } from "@dmesh/runtime/errors";
import { ModelContractError } from "./model-contract-error.js";

// Reading model directories: a model named by a request, its ONNX file, its JSON files and its size. What
// a directory must hold is the loader's business (a diffusers pipeline, an upscaler, a classifier).

/** A directory name, never a path: no separators, so a request cannot reach outside the models root. */
const MODEL_NAME = /^[A-Za-z0-9][\w.+-]{0,127}$/;

/** The directory of model `name` under `root`, or a NotFound listing the models there (field `field`). */
export async function modelDirectoryIn(root: string, name: string, field: string): Promise<string> {
  if (!MODEL_NAME.test(name)) {
    throw new InvalidArgumentError(
      field,
      `must name a model directory (letters, digits, ".", "_", "+", "-"), got ${JSON.stringify(name)}`,
    );
  }
  const dir = join(root, name);
  if (!(await stat(dir).catch(() => undefined))?.isDirectory()) {
    const known = await listModelDirectories(root);
    throw new NotFoundError(
      field,
      `no model "${name}" on this service (${known.length ? `it has ${known.join(", ")}` : "it has none"})`,
    );
  }
  return dir;
}

/** Subdirectories of `root`, sorted: the models a request may name. */
export async function listModelDirectories(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && MODEL_NAME.test(e.name))
    .map((e) => e.name)
    .sort();
}

/** `model.onnx`, or the only `.onnx` file (real exports are often named after the model). */
export async function findOnnxFile(dir: string, model: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".onnx")).sort();
  if (files.includes("model.onnx")) return join(dir, "model.onnx");
  const [only] = files;
  if (only && files.length === 1) return join(dir, only);
  throw new ModelContractError(
    model,
    files.length === 0
      ? `${dir} holds no .onnx file`
      : `${dir} holds ${files.join(", ")}; name the one to use model.onnx`,
  );
}

/** A JSON object file of the model directory; undefined when absent and not required. */
export async function readModelJson(
  dir: string,
  file: string,
  model: string,
  required: boolean,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, file), "utf8");
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ModelContractError(model, `${file} cannot be read: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelContractError(model, `${file} is not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ModelContractError(model, `${file} must hold a JSON object`);
  }
  return json as Record<string, unknown>;
}

/**
 * Bytes of an ONNX model on disk: `model.onnx` and the external data files exports keep beside it
 * (`model.onnx_data` as optimum writes it, `weights.pb` as older exports did).
 */
export function onnxFileBytes(dir: string): number {
  let total = 0;
  for (const f of ["model.onnx", "model.onnx_data", "weights.pb"]) {
    const p = join(dir, f);
    if (existsSync(p)) total += statSync(p).size;
  }
  return total;
}

/** A JSON object file that must exist (a ModelContractError naming it otherwise), read synchronously. */
export function readModelJsonSync(model: string, file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new ModelContractError(model, `missing ${file}`);
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ModelContractError(model, `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A JSON object file, or {} when it is absent or unreadable (optional configs). */
export function optionalModelJson(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
}
