import { extname } from "node:path";
import { SafetensorsError } from "./safetensors-error.js";

// PyTorch's .ckpt/.pt/.pth/.bin files are pickles (bare, or inside a zip archive since torch 1.6):
// loading one runs whatever code its author put in it. We never unpickle; such files are refused,
// by name before opening, and by their first bytes when a pickle named .safetensors fails to parse.

const PICKLE_EXTENSIONS = new Set([".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"]);

const WHY =
  "is a pickled PyTorch checkpoint, and loading a pickle can run arbitrary code: we never do. " +
  "Convert it to .safetensors";

/** Throws for a path whose extension names a pickled checkpoint. */
export function refusePickledPath(file: string): void {
  if (PICKLE_EXTENSIONS.has(extname(file).toLowerCase())) throw pickledFileError(file);
}

/**
 * Whether the first bytes are a zip archive (torch.save) or a pickle stream (protocol 2 to 5). Some
 * valid header lengths start with the same two bytes, so ask only once the file failed as safetensors.
 */
export function looksPickled(start: Uint8Array): boolean {
  const zip = start[0] === 0x50 && start[1] === 0x4b && start[2] === 0x03 && start[3] === 0x04;
  const pickle = start[0] === 0x80 && (start[1] ?? 0) >= 2 && (start[1] ?? 0) <= 5;
  return zip || pickle;
}

export function pickledFileError(file: string, cause?: unknown): SafetensorsError {
  return new SafetensorsError(file, WHY, undefined, { cause });
}
