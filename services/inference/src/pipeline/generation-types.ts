/** The part of an SDXL base -> refiner generation a step or checkpoint belongs to. */
export type DenoisePhaseName = "base" | "refiner";

/** Everything needed to continue a generation bit-identically (the domain side of DenoiseCheckpoint). */
export interface DenoiseState {
  /** First image of the UNet batch the state holds. */
  readonly imageIndex: number;
  readonly phase: DenoisePhaseName;
  /** Denoising steps completed (base and refiner together). */
  readonly step: number;
  readonly totalSteps: number;
  /** [images, 4, h/8, w/8]: one row per image of the batch. */
  readonly latents: Float32Array;
  readonly latentShape: readonly number[];
  /** JSON array: each row's scheduler state. */
  readonly schedulerState: string;
  /** JSON array: each row's generator state. */
  readonly rngState: string;
  readonly seed: bigint;
  readonly specDigest: string;
}

export type Stage = "loading" | "encoding_prompt" | "encoding_image" | "denoising" | "decoding";

export interface ProgressEvent {
  readonly stage: Stage;
  /** Steps completed of the current UNet batch, base and refiner together. */
  readonly step: number;
  readonly totalSteps: number;
  readonly etaSeconds: number;
  readonly elapsedSeconds: number;
  readonly phase?: DenoisePhaseName;
  readonly preview?: { width: number; height: number; rgb: Uint8Array };
}

export interface GeneratedImage {
  readonly index: number;
  readonly seed: bigint;
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
}

export interface GenerationTimings {
  totalSeconds: number;
  onnxSeconds: number;
  encodeSeconds: number;
  denoiseSeconds: number;
  decodeSeconds: number;
  stepSeconds: number[];
}

/** Where the pipeline reports to; the transport turns these into stream messages. */
export interface GenerationSink {
  progress(event: ProgressEvent): void;
  checkpoint(state: DenoiseState): void;
  image(image: GeneratedImage): void;
}
