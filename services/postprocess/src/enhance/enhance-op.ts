import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { checkIntegerInRange, checkNumberInRange } from "../validation/check-number.js";

/** One enhancement step; a list of them is applied in order. */
export type EnhanceOp =
  /** Unsharp mask on luminance; sigma of the Gaussian, 0.01–10. */
  | { readonly op: "sharpen"; readonly sigma: number }
  /** Auto-level: stretch luminance so these percentiles (default 1 and 99) become black and white. */
  | { readonly op: "normalize"; readonly lower?: number; readonly upper?: number }
  /** Multipliers, 0–4 (1 = unchanged). */
  | { readonly op: "modulate"; readonly brightness?: number; readonly saturation?: number }
  /** out = in^(1/gamma), 1/3–3: above 1 brightens midtones, below 1 darkens them. */
  | { readonly op: "gamma"; readonly gamma: number }
  /** Median filter over an odd `size` x `size` window, 3–15. */
  | { readonly op: "denoise"; readonly size: number };

export type EnhanceOpName = EnhanceOp["op"];

export const MAX_ENHANCE_OPS = 16;

/** Validates every step, naming the field as `ops[i].param`. */
export function checkEnhanceOps(ops: readonly EnhanceOp[]): readonly EnhanceOp[] {
  if (!Array.isArray(ops)) throw new InvalidArgumentError("ops", "must be a list");
  if (ops.length > MAX_ENHANCE_OPS) {
    throw new InvalidArgumentError("ops", `holds ${ops.length} steps; the limit is ${MAX_ENHANCE_OPS}`);
  }
  for (const [i, op] of ops.entries()) checkEnhanceOp(op, `ops[${i}]`);
  return ops;
}

function checkEnhanceOp(op: EnhanceOp, at: string): void {
  switch (op?.op) {
    case "sharpen":
      checkNumberInRange(`${at}.sigma`, op.sigma, 0.01, 10);
      return;
    case "normalize": {
      const lower = checkNumberInRange(`${at}.lower`, op.lower ?? 1, 0, 99);
      const upper = checkNumberInRange(`${at}.upper`, op.upper ?? 99, 1, 100);
      if (lower >= upper)
        throw new InvalidArgumentError(`${at}.lower`, `must be below upper (${upper}), got ${lower}`);
      return;
    }
    case "modulate":
      if (op.brightness === undefined && op.saturation === undefined) {
        throw new InvalidArgumentError(`${at}.brightness`, "give brightness, saturation or both");
      }
      if (op.brightness !== undefined) checkNumberInRange(`${at}.brightness`, op.brightness, 0, 4);
      if (op.saturation !== undefined) checkNumberInRange(`${at}.saturation`, op.saturation, 0, 4);
      return;
    case "gamma":
      checkNumberInRange(`${at}.gamma`, op.gamma, 1 / 3, 3);
      return;
    case "denoise":
      if (checkIntegerInRange(`${at}.size`, op.size, 3, 15) % 2 === 0) {
        throw new InvalidArgumentError(`${at}.size`, `must be odd, got ${op.size}`);
      }
      return;
    default:
      throw new InvalidArgumentError(
        `${at}.op`,
        `must be one of sharpen, normalize, modulate, gamma, denoise, got ${JSON.stringify((op as { op?: unknown })?.op)}`,
      );
  }
}
