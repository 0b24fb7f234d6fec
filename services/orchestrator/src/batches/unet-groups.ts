import { adapterSetKey, estimateActivationBytes, type ResolvedSpec } from "@dmesh/spec";
import type { GroupPlacement } from "../clients/replica-pool.js";

/** What grouping needs to know of one batch item's generation. */
export interface UnetProfile {
  /** Items with equal keys can share UNet runs (`unetGroupKey`). */
  readonly key: string;
  readonly model: string;
  /** Images the item asks for. */
  readonly images: number;
  /** Device memory one of its images takes while denoising (the activation estimate inference shares). */
  readonly bytesPerImage: number;
}

/**
 * The key under which generations can share UNet runs on one replica, as its UNet batcher merges them: the
 * same model (one UNet), latent size and schedule (scheduler, steps, strength, refiner hand-over), so their
 * steps stay in step and have one timestep even for exports that take a single one per run; and guidance on
 * or off, since it doubles an image's rows and a merged run is capped in rows; and the LoRA set with its weights,
 * since each set runs its own merged UNet (embeddings, which only inference can find in a prompt, keep sets
 * apart there too). Prompt length also shapes the
 * UNet input (75-token chunks) but cannot be told without the model's tokenizer: prompts of a different
 * number of chunks run side by side unmerged.
 */
export function unetGroupKey(spec: ResolvedSpec): string {
  return JSON.stringify([
    spec.mode,
    spec.model,
    spec.refiner,
    spec.width,
    spec.height,
    spec.steps,
    spec.scheduler ?? "",
    spec.karrasSigmas ?? "",
    spec.sigmaSchedule ?? "",
    spec.timestepSpacing ?? "",
    spec.mode === "txt2img" ? 1 : spec.strength,
    spec.denoisingEnd,
    spec.guidanceScale > 1,
    adapterSetKey(spec.adapters),
  ]);
}

export function unetProfile(spec: ResolvedSpec): UnetProfile {
  return {
    key: unetGroupKey(spec),
    model: spec.model,
    images: spec.count,
    bytesPerImage: estimateActivationBytes(spec.width, spec.height),
  };
}

/**
 * The next group to send to `placement`'s replica: the first waiting item, and after it the waiting items with
 * its key, in order, while the group stays within the replica's images and requests at once and `slots`.
 */
export function nextGroup<T>(
  waiting: readonly T[],
  profileOf: (item: T) => UnetProfile | undefined,
  placement: GroupPlacement,
  slots: number,
): T[] {
  const [first] = waiting;
  const profile = first === undefined ? undefined : profileOf(first);
  if (first === undefined || !profile) return first === undefined ? [] : [first];
  const group: T[] = [first];
  let images = profile.images;
  for (const candidate of waiting.slice(1)) {
    if (group.length >= Math.min(placement.requests, slots)) break;
    const other = profileOf(candidate);
    if (other?.key !== profile.key || images + other.images > placement.images) continue;
    group.push(candidate);
    images += other.images;
  }
  return group;
}
