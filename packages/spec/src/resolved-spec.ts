import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { ResolvedAdapter } from "./resolve-adapters.js";
import type { ResolvedControlNetUnit } from "./validate-control-nets.js";
import type { ResolvedScheduler } from "./validate-scheduler.js";

export type GenerationModeName = "txt2img" | "img2img" | "inpaint";

/** A validated generation request with every default applied: what domain code works from. */
export interface ResolvedSpec extends ResolvedScheduler {
  readonly mode: GenerationModeName;
  readonly model: string;
  readonly refiner: string;
  readonly vae: string;
  readonly steps: number;
  readonly guidanceScale: number;
  /** Unset = choose at random and report it back. */
  readonly seed: bigint | undefined;
  readonly strength: number;
  readonly eta: number;
  readonly guidanceRescale: number;
  readonly clipSkip: number;
  /** Fraction of the schedule the base runs before the refiner takes over; > 0 exactly when `refiner` is set. */
  readonly denoisingEnd: number;
  readonly prompt: string;
  readonly negativePrompt: string;
  readonly prompt2: string;
  readonly negativePrompt2: string;
  readonly plainPrompt: boolean;
  /** LoRAs to apply: `adapters`, then the prompts' `<lora:…>` tags (already cut from the prompts above). */
  readonly adapters: readonly ResolvedAdapter[];
  readonly width: number;
  readonly height: number;
  readonly originalSize: { width: number; height: number };
  readonly cropTop: number;
  readonly cropLeft: number;
  readonly targetSize: { width: number; height: number };
  readonly aestheticScore: number;
  readonly negativeAestheticScore: number;
  readonly count: number;
  readonly previewInterval: number;
  readonly initImage: Image | undefined;
  readonly maskImage: Image | undefined;
  /** ControlNet units, in request order (empty: none). */
  readonly controlNets: readonly ResolvedControlNetUnit[];
}
