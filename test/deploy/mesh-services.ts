import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Settings } from "@dmesh/runtime";
import { deviceSettings } from "../../services/device/dist/config.js";
import { inferenceSettings } from "../../services/inference/dist/config.js";
import { orchestratorSettings } from "../../services/orchestrator/dist/config.js";
import { postprocessSettings } from "../../services/postprocess/dist/config.js";
import { type Dockerfile, parseDockerfile, type Stage } from "./dockerfile.js";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A service process: its folder name is its image name, its k8s workload, container and Service name. */
export interface MeshService {
  name: string;
  /** The settings table the process reads (from its compiled config.ts). */
  settings: Settings;
  defaultPort: number;
}

const service = (name: string, settings: Settings): MeshService => ({
  name,
  settings,
  defaultPort: settings.port?.default as number,
});

export const MESH_SERVICES: readonly MeshService[] = [
  service("orchestrator", orchestratorSettings),
  service("inference", inferenceSettings),
  service("postprocess", postprocessSettings),
  service("device", deviceSettings),
];

export function meshService(name: string): MeshService | undefined {
  return MESH_SERVICES.find((s) => s.name === name);
}

export function dockerfilePath(serviceName: string): string {
  return join(REPO_ROOT, "services", serviceName, "Dockerfile");
}

export function readDockerfile(serviceName: string): Dockerfile {
  return parseDockerfile(readFileSync(dockerfilePath(serviceName), "utf8"));
}

/** What builds an image: the service's Dockerfile and the stage that becomes the image. */
export interface ImageSource {
  service: MeshService;
  stage: Stage;
}

/**
 * Maps an image reference to its Dockerfile by the naming rule the manifests follow: `<registry>/<service>`
 * is the Dockerfile's default (last) stage, `<registry>/<service>-<target>` its `--target <target>` stage.
 * Undefined when no Dockerfile builds it.
 */
export function imageSource(image: string): ImageSource | undefined {
  const repository = image.replace(/@sha256:[\da-f]+$/, "").replace(/:[\w.-]+$/, "");
  const name = repository.split("/").at(-1) ?? "";
  for (const candidate of MESH_SERVICES) {
    if (name !== candidate.name && !name.startsWith(`${candidate.name}-`)) continue;
    const { stages } = readDockerfile(candidate.name);
    const target = name.slice(candidate.name.length + 1);
    const stage = target === "" ? stages.at(-1) : stages.find((s) => s.name === target);
    return stage ? { service: candidate, stage } : undefined;
  }
  return undefined;
}
