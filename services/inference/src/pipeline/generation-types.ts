/** Everything needed to continue a generation bit-identically (the domain side of DenoiseCheckpoint). */
export interface DenoiseState {
  readonly imageIndex: number;
  /** Denoising steps completed. */
  readonly step: number;
  readonly totalSteps: number;
  readonly latents: Float32Array;
  readonly latentShape: readonly number[];
  readonly schedulerState: string;
  readonly rngState: string;
  readonly seed: bigint;
  readonly specDigest: string;
}

export type Stage = "loading" | "encoding_prompt" | "encoding_image" | "denoising" | "decoding";

export interface ProgressEvent {
  readonly stage: Stage;
  readonly step: number;
  readonly totalSteps: number;
  readonly etaSeconds: number;
  readonly elapsedSeconds: number;
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
