import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";

export const SERVICES = ["device", "postprocess", "inference", "orchestrator"] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * Node flags per service, the same in every way a service is started (here, the Dockerfiles, the bench).
 * Inference pre-sizes V8's young generation: left to grow on demand it adds ~20 MiB of RSS over the first
 * ~1,000 generations, which reads as a leak; at full size from the start RSS stays flat (measured 1.17x -> 1.04x
 * after 1,000 tiny generations against the first 50). Postprocess starts its old generation at 64 MiB: with
 * V8's ~13 MiB start, every 12 MiB image it handles set off a full collection (15-19 per 30 upscales),
 * 3 per 30 with it.
 */
export const NODE_FLAGS: Record<ServiceName, readonly string[]> = {
  device: [],
  postprocess: ["--initial-old-space-size=64"],
  inference: ["--min-semi-space-size=16"],
  orchestrator: [],
};

export interface MeshLayout {
  ports: Record<ServiceName, number>;
  dataDir: string;
  modelsDir: string;
  logDir: string;
  host: string;
  /** Extra environment for every service (e.g. LOG_LEVEL). */
  env?: Record<string, string>;
  /** METRICS_PORT of the services that get one (the orchestrator serves `/metrics` on its own port). */
  metricsPorts?: Partial<Record<ServiceName, number>>;
}

export interface RunningMesh {
  readonly url: string;
  /** Each service's current process (a restart replaces its entry). */
  readonly children: Record<ServiceName, ChildProcess>;
  /** Starts a service again, as it was started, and waits until it is ready; kills it if it never is. */
  restart(name: ServiceName): Promise<ChildProcess>;
  /** SIGTERM to every service, then wait for them to exit (SIGKILL after the grace period). */
  stop(graceMs?: number): Promise<void>;
}

/** Path of a service's compiled entry point, found through its workspace package. */
export function serviceEntry(name: ServiceName): string {
  return join(dirname(fileURLToPath(import.meta.resolve(`@dmesh/${name}`))), "main.js");
}

/** Starts the four services as separate processes on loopback and waits until each reports ready. */
export async function launchMesh(
  layout: MeshLayout,
  onReady?: (name: ServiceName, address: string) => void,
): Promise<RunningMesh> {
  mkdirSync(layout.logDir, { recursive: true });
  const address = (name: ServiceName) => `${layout.host}:${layout.ports[name]}`;
  const envFor = (name: ServiceName): Record<string, string> => {
    const metricsPort = layout.metricsPorts?.[name];
    const common = {
      HOST: layout.host,
      PORT: String(layout.ports[name]),
      ...(metricsPort !== undefined ? { METRICS_PORT: String(metricsPort) } : {}),
      ...layout.env,
    };
    switch (name) {
      case "inference":
        return { ...common, MODELS_DIR: layout.modelsDir, DEVICE_URL: address("device") };
      case "orchestrator":
        return {
          ...common,
          DATA_DIR: layout.dataDir,
          INFERENCE_URLS: address("inference"),
          POSTPROCESS_URLS: address("postprocess"),
          DEVICE_URLS: address("device"),
        };
      default:
        return common;
    }
  };
  const children = {} as Record<ServiceName, ChildProcess>;
  const stop = async (graceMs = 15_000) => {
    await Promise.all(
      Object.values(children).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
  };
  const start = async (name: ServiceName) => {
    const logFile = join(layout.logDir, `${name}.log`);
    const log = createWriteStream(logFile, { flags: "a" });
    const child = spawn(process.execPath, [...NODE_FLAGS[name], serviceEntry(name)], {
      env: { ...process.env, ...envFor(name) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    children[name] = child;
    await waitReady(name, address(name), child, logFile, 120_000);
    return child;
  };
  try {
    for (const name of SERVICES) {
      await start(name);
      onReady?.(name, address(name));
    }
  } catch (err) {
    await stop(2000);
    throw err;
  }
  const restart = async (name: ServiceName) => {
    try {
      return await start(name);
    } catch (err) {
      children[name]?.kill("SIGKILL");
      throw err;
    }
  };
  return { url: `http://${address("orchestrator")}`, children, restart, stop };
}

/** Polls grpc.health.v1 readiness ("") until SERVING; fails early, with the log's tail, if the process exits. */
async function waitReady(
  name: ServiceName,
  address: string,
  child: ChildProcess,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const transport = createGrpcTransport({ address });
  const health = createClient(Health, transport);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail(logFile)}`,
        );
      }
      try {
        const res = await health.check({ service: "" }, { timeoutMs: 1000 });
        if (res.status === Serving.SERVING) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name} was not ready within ${timeoutMs / 1000} s:\n${tail(logFile)}`);
  } finally {
    transport.close();
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A TCP port free on `host` a moment ago, for a service that is told its port before it starts. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
