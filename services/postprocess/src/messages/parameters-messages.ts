import type { GenerationParameters as ParametersMessage } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import { controlNetUnitsFromInfotext } from "../infotext/control-net-units.js";
import type { GenerationParameters } from "../infotext/generation-parameters.js";
import { controlNetUnitMessage } from "./control-net-messages.js";

/** The generation parameters an Encode embeds, from their message (unset fields left out). */
export function parametersFromMessage(p: ParametersMessage): GenerationParameters {
  return {
    prompt: p.prompt,
    ...(p.negativePrompt ? { negativePrompt: p.negativePrompt } : {}),
    ...(p.steps ? { steps: p.steps } : {}),
    ...(p.sampler ? { sampler: p.sampler } : {}),
    ...(p.scheduleType ? { scheduleType: p.scheduleType } : {}),
    ...(p.cfgScale ? { cfgScale: Math.round(p.cfgScale * 1000) / 1000 } : {}),
    seed: Number(p.seed),
    ...(p.width ? { width: p.width, height: p.height } : {}),
    ...(p.modelHash ? { modelHash: p.modelHash } : {}),
    ...(p.model ? { model: p.model } : {}),
    ...(Object.keys(p.extra).length ? { extra: p.extra } : {}),
  };
}

/** Parameters read back from an image's infotext, as their message; its ControlNet units typed too. */
export function parametersMessage(p: GenerationParameters) {
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.extra ?? {})) extra[k] = String(v);
  return {
    prompt: p.prompt,
    negativePrompt: p.negativePrompt ?? "",
    steps: p.steps ?? 0,
    sampler: p.sampler ?? "",
    scheduleType: p.scheduleType ?? "",
    cfgScale: p.cfgScale ?? 0,
    seed: BigInt(Math.max(0, Math.trunc(p.seed ?? 0))),
    width: p.width ?? 0,
    height: p.height ?? 0,
    model: p.model ?? "",
    modelHash: p.modelHash ?? "",
    extra,
    controlNets: controlNetUnitsFromInfotext(p.extra ?? {}).map(controlNetUnitMessage),
  };
}
