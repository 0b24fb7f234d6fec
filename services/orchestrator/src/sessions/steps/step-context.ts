import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpec, SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type {
  EncodeRequestSchema,
  EnhanceOpSchema,
  ProcessRequestSchema,
  SafetyPolicy,
  SafetyResult,
  UpscaleSpecSchema,
} from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import type { Session } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { JsonValue, StepDefinition } from "../../workflows/workflow-definition.js";

/** An image flowing along the workflow's edges, with what its encode should record about it. */
export interface WorkflowImage {
  readonly image: Image;
  /** The seed that made it, when a generate step here did (a resumed session falls back to session.seeds). */
  readonly seed?: bigint;
  /** Infotext fields for its encode: a hires pass, a safety verdict. */
  readonly notes: Readonly<Record<string, string>>;
  /** Infotext fields the generation that made it reported (its ControlNet units), in order. */
  readonly generated?: readonly { key: string; value: string }[];
  /** The scheduler that made it, when the replica said. */
  readonly scheduler?: SchedulerSpec;
  /** A safety step has judged it: encode applies no policy of its own. */
  readonly safetyChecked?: boolean;
}

export interface GenerateResult {
  readonly images: Image[];
  readonly seeds: bigint[];
  /** The model the replica used (the default when the spec names none). */
  readonly model: string;
  /** Infotext fields the generation reported (its ControlNet units, LoRA and embedding hashes). */
  readonly infotext: readonly { key: string; value: string }[];
  /** The scheduler it ran (the model's own when the spec names no kind), when the replica says. */
  readonly scheduler?: SchedulerSpec;
}

/**
 * The services a step may call, as narrow as the steps need: the executor implements it over the replica
 * pools (with the retry policy and the stream watchdog), and tests fake it without any server.
 */
export interface StepMesh {
  /** Throws StepInterrupted("paused") when a pause stopped the generation at a checkpoint. */
  generate(spec: GenerationSpec): Promise<GenerateResult>;
  upscale(image: Image, upscale: MessageInitShape<typeof UpscaleSpecSchema>): Promise<Image>;
  enhance(image: Image, ops: MessageInitShape<typeof EnhanceOpSchema>[]): Promise<Image>;
  /** UNSPECIFIED = the tenant's policy. */
  checkSafety(image: Image, policy: SafetyPolicy): Promise<{ result: SafetyResult; image?: Image }>;
  preprocessControl(
    image: Image,
    preprocessor: string,
    resolution: number,
    width: number,
    height: number,
  ): Promise<Image>;
  /** Safety by the tenant's policy, then encode (a rejection fails the call). */
  process(request: MessageInitShape<typeof ProcessRequestSchema>): Promise<Image>;
  encode(request: MessageInitShape<typeof EncodeRequestSchema>): Promise<Image>;
}

/** What one step sees: its definition, its resolved inputs and parameters, and the mesh. */
export interface StepContext {
  readonly session: Session;
  readonly step: StepDefinition;
  /** The session's spec as submitted (a step changes a copy). */
  readonly spec: GenerationSpec;
  readonly mesh: StepMesh;
  /** Whether the port is wired. */
  has(port: string): boolean;
  /** The images wired into `port` (none when it is not wired). */
  images(port: string): WorkflowImage[];
  /** The parameter: set in params, bound from a workflow input, else the kind's default. */
  param(name: string): JsonValue | undefined;
  /** The definition of the step whose output feeds `port`, if a step's does. */
  sourceOf(port: string): StepDefinition | undefined;
  /** Records an image that is not handed back, and why. */
  reject(imageIndex: number, reason: string): void;
  /** Stores an encoded image as the session's artifact. */
  storeArtifact(
    encoded: Image,
    meta: { width: number; height: number; imageIndex: number; seed: bigint },
  ): Promise<void>;
  /** The model the last generation used, for the infotext. */
  modelUsed: string;
}

/** A pause or cancel that stops the session between calls (not a failure). */
export class StepInterrupted extends Error {
  constructor(readonly outcome: "paused" | "cancelled") {
    super(outcome);
  }
}

export type StepRunner = (ctx: StepContext) => Promise<WorkflowImage[]>;

export const num = (v: JsonValue | undefined): number | undefined => (typeof v === "number" ? v : undefined);
export const str = (v: JsonValue | undefined): string | undefined => (typeof v === "string" ? v : undefined);
