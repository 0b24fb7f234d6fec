import { createHash } from "node:crypto";
import type { ResolvedSpec } from "@dmesh/spec";

/** A fingerprint of everything that shapes the result, so a checkpoint resumes only the generation it came from. */
export function specDigest(spec: ResolvedSpec, seed: bigint): string {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify(
      {
        ...spec,
        seed: seed.toString(),
        initImage: undefined,
        maskImage: undefined,
        // Left out when empty, so a checkpoint made before ControlNets existed still resumes.
        controlNets:
          spec.controlNets.length > 0 ? spec.controlNets.map((u) => ({ ...u, image: undefined })) : undefined,
        // Likewise LoRAs (the request field that named one is no part of the result).
        adapters:
          spec.adapters.length > 0 ? spec.adapters.map((a) => ({ ...a, field: undefined })) : undefined,
      },
      (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    ),
  );
  if (spec.initImage) hash.update(spec.initImage.data);
  if (spec.maskImage) hash.update(spec.maskImage.data);
  for (const unit of spec.controlNets) hash.update(unit.image.data);
  return hash.digest("hex").slice(0, 32);
}
