import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { createContext } from "preact";
import type { ArtifactFile } from "./api/artifact-files.js";

export type SendTarget = "img2img" | "inpaint";

/** What any page may ask of the app. */
export interface AppActions {
  /** Opens Generate on `target` with this image as its input (and the spec that made it, if known). */
  sendImage(target: SendTarget, file: ArtifactFile, spec: GenerationSpec | undefined): void;
  /** Bumped after signing in or out, so pages load again with the new key. */
  readonly authEpoch: number;
}

export const AppContext = createContext<AppActions>({ sendImage: () => {}, authEpoch: 0 });
