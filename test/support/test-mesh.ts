import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchMesh, type RunningMesh, type ServiceName } from "@dmesh/cli/mesh-launcher";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { freePorts } from "./free-ports.js";

export interface TestMesh extends RunningMesh {
  readonly dir: string;
  readonly ports: Record<ServiceName, number>;
  address(name: ServiceName): string;
  dispose(): Promise<void>;
}

/** The four services as real processes on 127.0.0.1 free ports, over a fresh temp dir with the tiny model. */
export async function startTestMesh(env: Record<string, string> = {}): Promise<TestMesh> {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-e2e-"));
  await ensureTinyModel(join(dir, "models", "tiny-sdxl"));
  await ensureTinyModel(join(dir, "models", "tiny-sdxl-refiner"), { kind: "sdxl-refiner", seed: 7 });
  const [orchestrator, inference, postprocess, device] = await freePorts(4);
  const ports = { orchestrator, inference, postprocess, device } as Record<ServiceName, number>;
  const mesh = await launchMesh({
    ports,
    host: "127.0.0.1",
    dataDir: join(dir, "data"),
    modelsDir: join(dir, "models"),
    logDir: join(dir, "logs"),
    env: { LOG_LEVEL: "warn", ...env },
  });
  return {
    ...mesh,
    dir,
    ports,
    address: (name) => `127.0.0.1:${ports[name]}`,
    dispose: async () => {
      await mesh.stop(5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
