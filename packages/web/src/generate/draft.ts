import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import type { ControlUnitValues } from "./control-units.js";
import { DEFAULT_VALUES, type SpecValues } from "./spec-form.js";

/** An image chosen for a workflow input: a stored artifact or an uploaded or painted file. */
export interface ImageChoice {
  readonly url: string;
  readonly width: number;
  readonly height: number;
  /** What the page says it is, e.g. "uploaded cat.png" or "gallery image, seed 42". */
  readonly label: string;
  readonly input: MessageInitShape<typeof ImageInputSchema>;
}

/** The Generate form's state, kept by the app so that other pages can send images into it. */
export interface GenerateDraft {
  readonly workflowId: string;
  readonly values: SpecValues;
  /** By workflow input name ("image", "mask"). */
  readonly images: Readonly<Record<string, ImageChoice>>;
  /** ControlNet units (GenerationSpec.control_nets). */
  readonly controls: readonly ControlUnitValues[];
}

export const EMPTY_DRAFT: GenerateDraft = {
  workflowId: "txt2img",
  values: DEFAULT_VALUES,
  images: {},
  controls: [],
};
