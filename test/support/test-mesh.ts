import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { launchMesh, type RunningMesh, type ServiceName } from "@dmesh/cli/mesh-launcher";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { freePorts } from "./free-ports.js";

export interface TestMesh extends RunningMesh {
  readonly dir: string;
  readonly ports: Record<ServiceName, number>;
  /** Where each service answers Prometheus scrapes (host:port; the orchestrator's is its own port). */
  readonly metricsTargets: Record<ServiceName, string>;
  address(name: ServiceName): string;
  dispose(): Promise<void>;
}

/**
 * The four services as real processes on 127.0.0.1 free ports (METRICS_PORT too), over a fresh temp dir with
 * the tiny model.
 */
export async function startTestMesh(env: Record<string, string> = {}): Promise<TestMesh> {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-e2e-"));
  await ensureTinyModel(join(dir, "models", "tiny-sdxl"));
  await ensureTinyModel(join(dir, "models", "tiny-sdxl-refiner"), { kind: "sdxl-refiner", seed: 7 });
  const [orchestrator, inference, postprocess, device, ...metrics] = await freePorts(7);
  const ports = { orchestrator, inference, postprocess, device } as Record<ServiceName, number>;
  const [inferenceMetrics, postprocessMetrics, deviceMetrics] = metrics as [number, number, number];
  const metricsPorts = {
    inference: inferenceMetrics,
    postprocess: postprocessMetrics,
    device: deviceMetrics,
  };
  const mesh = await launchMesh({
    ports,
    host: "127.0.0.1",
    dataDir: join(dir, "data"),
    modelsDir: join(dir, "models"),
    logDir: join(dir, "logs"),
    env: { LOG_LEVEL: "warn", ...env },
    metricsPorts,
  });
  return {
    ...mesh,
    dir,
    ports,
    metricsTargets: {
      orchestrator: `127.0.0.1:${orchestrator}`,
      inference: `127.0.0.1:${inferenceMetrics}`,
      postprocess: `127.0.0.1:${postprocessMetrics}`,
      device: `127.0.0.1:${deviceMetrics}`,
    },
    address: (name) => `127.0.0.1:${ports[name]}`,
    dispose: async () => {
      await mesh.stop(5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
