import { randomInt } from "node:crypto";
import { clone, create, fromJson, type JsonValue as ProtoJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type GenerationSpec,
  GenerationSpecSchema,
  HyperparametersSchema,
} from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { type Image, ImageSchema } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type ImageInput, ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { InvalidArgumentError, NotFoundError, quote } from "@dmesh/runtime/errors";
import { type GenerationModeName, validateGenerationSpec } from "@dmesh/spec";
import type { Replica } from "../clients/replica-pool.js";
import type { ArtifactStore } from "../store/artifact-store.js";
import { valueJson } from "../workflows/definition-proto.js";
import { STEP_KINDS } from "../workflows/step-kinds.js";
import { checkParam, parseReference, typeOfValue } from "../workflows/validate-definition.js";
import type { WorkflowDefinition } from "../workflows/workflow-definition.js";
import { encodingOf } from "./media-type.js";
import { checkOwnSchedulerOptions } from "./own-scheduler-check.js";

/** Spec fields that carry a workflow's image inputs. */
const SPEC_IMAGES = [
  { input: "image", field: "initImage", protoName: "init_image" },
  { input: "mask", field: "maskImage", protoName: "mask_image" },
] as const;

export interface SubmitInputs {
  spec: GenerationSpec | undefined;
  images: Record<string, ImageInput>;
  /** Every scalar input, defaults filled in. */
  values: Record<string, Value>;
}

/**
 * A submit's spec, named images and scalar inputs, checked against the workflow's declared inputs. An image
 * may come in `images` or inside the spec (init_image is "image", mask_image is "mask": a batch item carries
 * its image that way); it is kept once, as an input, and the spec is validated as the first generation will
 * send it. A scalar bound to a step parameter is checked against that parameter's range.
 */
export async function checkSubmit(
  workflow: WorkflowDefinition,
  req: {
    tenant: string;
    spec: GenerationSpec | undefined;
    images: Record<string, ImageInput>;
    inputs?: Record<string, Value>;
  },
  artifacts: ArtifactStore,
  /** Inference replicas to ask for a model's own scheduler (see own-scheduler-check.ts). */
  replicas: readonly Replica<typeof InferenceService>[] = [],
): Promise<SubmitInputs> {
  const declared = new Map(workflow.inputs.map((i) => [i.name, i]));
  const images = { ...req.images };
  const spec = req.spec ? clone(GenerationSpecSchema, req.spec) : undefined;
  for (const { input, field } of SPEC_IMAGES) {
    if (!spec || !declared.has(input)) continue;
    const image = spec[field];
    if (image && image.data.length > 0 && !images[input])
      images[input] = create(ImageInputSchema, { source: { case: "image", value: image } });
    spec[field] = undefined;
  }
  const values: Record<string, Value> = {};
  for (const [name, value] of Object.entries(req.inputs ?? {})) {
    const input = declared.get(name);
    if (!input || input.type === "spec" || input.type === "image" || input.type === "images")
      throw new InvalidArgumentError(
        `inputs.${name}`,
        `is not a scalar input of workflow ${quote(workflow.id)}`,
      );
    const json = valueJson(value, `inputs.${name}`);
    const got = typeOfValue(json);
    const fits = got === input.type || (input.type === "number" && got === "integer");
    if (!fits)
      throw new InvalidArgumentError(
        `inputs.${name}`,
        `must be ${input.type}, got ${quote(JSON.stringify(json), 40)}`,
      );
    values[name] = value;
  }
  for (const input of workflow.inputs) {
    if (input.type === "spec") continue;
    if (input.type === "image" || input.type === "images") {
      const given = images[input.name];
      if (input.required && !given)
        throw new InvalidArgumentError(`images.${input.name}`, "is required by this workflow");
      if (given?.source.case === "artifactId" && !(await artifacts.get(given.source.value, req.tenant)))
        throw new NotFoundError(
          `images.${input.name}.artifact_id`,
          `no artifact ${quote(given.source.value)}`,
        );
      if (given && given.source.case === undefined)
        throw new InvalidArgumentError(`images.${input.name}`, "needs image or artifact_id");
      continue;
    }
    if (values[input.name] === undefined) {
      if (input.default !== undefined) values[input.name] = fromJson(ValueSchema, input.default as ProtoJson);
      else if (input.required)
        throw new InvalidArgumentError(`inputs.${input.name}`, "is required by this workflow");
    }
  }
  checkBoundParams(workflow, values);

  const mode = firstGenerationMode(workflow);
  if (!mode && !spec) return { spec, images, values };
  const view = spec ? clone(GenerationSpecSchema, spec) : undefined;
  if (view)
    for (const { input, field } of SPEC_IMAGES)
      view[field] = await imageOf(images[input], req.tenant, artifacts);
  try {
    validateGenerationSpec(view, "spec", mode ?? "txt2img");
  } catch (err) {
    // The spec's image fields were filled from `images`: name the field the client actually sent.
    const sent =
      err instanceof InvalidArgumentError && SPEC_IMAGES.find((s) => err.field === `spec.${s.protoName}`);
    if (!sent || !images[sent.input]) throw err;
    throw new InvalidArgumentError(
      `images.${sent.input}`,
      (err as InvalidArgumentError).message.slice(`spec.${sent.protoName}: `.length),
    );
  }
  await checkOwnSchedulerOptions(view, replicas);
  if (spec) {
    // The seed is fixed at submit so that a resumed, retried or restarted session makes the same image.
    spec.params = create(HyperparametersSchema, spec.params ?? {});
    spec.params.seed ??= BigInt(randomInt(0, 2 ** 32));
  }
  return { spec, images, values };
}

/** Scalars bound to step parameters ("scale": "input.scale") must fit the parameter. */
function checkBoundParams(workflow: WorkflowDefinition, values: Record<string, Value>): void {
  for (const step of workflow.steps) {
    for (const [name, source] of Object.entries(step.inputs)) {
      const param = STEP_KINDS[step.kind]?.params[name];
      const ref = parseReference(source);
      if (!param || ref?.from !== "input") continue;
      const value = values[ref.name];
      if (value) checkParam(valueJson(value, `inputs.${ref.name}`), param, `inputs.${ref.name}`);
    }
  }
}

/** The mode of the workflow's first generating step (what the spec is validated for), if it has one. */
export function firstGenerationMode(workflow: WorkflowDefinition): GenerationModeName | undefined {
  const step = workflow.steps.find((s) => STEP_KINDS[s.kind]?.domain === "inference" && s.kind !== "control");
  if (!step) return undefined;
  if (step.kind !== "generate") return "txt2img";
  const mode = step.params.mode;
  if (mode === "txt2img" || mode === "img2img" || mode === "inpaint") return mode;
  return step.inputs.mask ? "inpaint" : step.inputs.image ? "img2img" : "txt2img";
}

async function imageOf(
  input: ImageInput | undefined,
  tenant: string,
  artifacts: ArtifactStore,
): Promise<Image | undefined> {
  if (input?.source.case === "image") return input.source.value;
  if (input?.source.case !== "artifactId") return undefined;
  const artifact = await artifacts.get(input.source.value, tenant);
  return (
    artifact &&
    create(ImageSchema, { encoding: encodingOf(artifact.mediaType), data: await artifacts.read(artifact.id) })
  );
}
