import { InvalidArgumentError } from "@dmesh/runtime/errors";

export type Precision = "float32" | "float16";

/**
 * What a model needs in device memory, computed by the caller from its metadata (parameter counts,
 * latent size): the weights once, plus the activations each image of a batch adds at the target size.
 */
export interface ModelMemoryEstimate {
  readonly weightsBytes: number;
  readonly activationBytesPerImage: number;
  /** The precision both figures are given in. */
  readonly precision: Precision;
}

export const BYTES_PER_ELEMENT: Readonly<Record<Precision, number>> = { float32: 4, float16: 2 };

export function checkModelMemoryEstimate(
  estimate: ModelMemoryEstimate,
  field = "estimate",
): ModelMemoryEstimate {
  for (const key of ["weightsBytes", "activationBytesPerImage"] as const) {
    const value = estimate?.[key];
    if (
      typeof value !== "number" ||
      !Number.isFinite(value) ||
      value < 0 ||
      (key === "activationBytesPerImage" && value === 0)
    ) {
      throw new InvalidArgumentError(
        `${field}.${key}`,
        `must be a ${key === "weightsBytes" ? "non-negative" : "positive"} number of bytes, got ${String(value)}`,
      );
    }
  }
  if (estimate.precision !== "float32" && estimate.precision !== "float16") {
    throw new InvalidArgumentError(
      `${field}.precision`,
      `must be float32 or float16, got ${String(estimate.precision)}`,
    );
  }
  return estimate;
}

/** The same estimate in another precision: every byte scales with the element size. */
export function estimateAt(estimate: ModelMemoryEstimate, precision: Precision): ModelMemoryEstimate {
  const scale = BYTES_PER_ELEMENT[precision] / BYTES_PER_ELEMENT[estimate.precision];
  return {
    weightsBytes: estimate.weightsBytes * scale,
    activationBytesPerImage: estimate.activationBytesPerImage * scale,
    precision,
  };
}
