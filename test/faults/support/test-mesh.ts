import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { type ClientTls, createGrpcTransport } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { type ServiceProcess, startService, tail, unusedPort } from "./service-process.js";

export interface TestMeshOptions {
  inferenceReplicas?: number;
  /** Extra orchestrator settings (MAX_ATTEMPTS, MAX_QUEUED_SESSIONS, ...). */
  orchestratorEnv?: Record<string, string>;
  inferenceEnv?: Record<string, string>;
  postprocessEnv?: Record<string, string>;
  /** TLS of the test's own calls (readiness, `clients`), for services that listen with TLS. */
  tls?: ClientTls;
  /** Sent as `authorization: Bearer` by `clients`. */
  apiKey?: string;
}

export interface OrchestratorClients {
  processing: Client<typeof ProcessingService>;
  mesh: Client<typeof MeshService>;
  artifacts: Client<typeof ArtifactService>;
  /** Closes the connection. */
  close(): void;
}

/**
 * Typed clients of the orchestrator at `address`, over gRPC (HTTP/2) like a backend service; with an API key
 * (sent as a bearer token) and TLS when given.
 */
export function connectOrchestrator(
  address: string,
  options: { apiKey?: string | undefined; tls?: ClientTls | undefined } = {},
): OrchestratorClients {
  const transport = createGrpcTransport({
    address,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.apiKey ? { headers: { authorization: `Bearer ${options.apiKey}` } } : {}),
  });
  return {
    processing: createClient(ProcessingService, transport),
    mesh: createClient(MeshService, transport),
    artifacts: createClient(ArtifactService, transport),
    close: () => transport.close(),
  };
}

/**
 * A whole mesh of real processes on 127.0.0.1 over a temp directory: the tiny model, N inference replicas,
 * one postprocess and one orchestrator (SQLite and artifacts in the temp dir). `stop` kills everything and
 * removes the directory.
 */
export class TestMesh {
  readonly inference: ServiceProcess[] = [];
  postprocess!: ServiceProcess;
  orchestrator!: ServiceProcess;
  clients!: OrchestratorClients;
  private orchestratorEnv: Record<string, string> = {};
  private inferenceEnv: Record<string, string> = {};
  private orchestratorStarts = 0;
  private options: TestMeshOptions = {};
  private readonly others: ServiceProcess[] = [];
  private readonly otherClients: OrchestratorClients[] = [];

  private constructor(readonly dir: string) {}

  get dataDir(): string {
    return join(this.dir, "data");
  }

  get logDir(): string {
    return join(this.dir, "logs");
  }

  get modelsDir(): string {
    return join(this.dir, "models");
  }

  static async start(options: TestMeshOptions = {}): Promise<TestMesh> {
    const mesh = new TestMesh(mkdtempSync(join(tmpdir(), "dmesh-faults-")));
    mesh.options = options;
    const readyTls = options.tls ? { readyTls: options.tls } : {};
    try {
      mkdirSync(mesh.logDir, { recursive: true });
      await ensureTinyModel(join(mesh.modelsDir, "tiny-sdxl"));
      const inferenceEnv = { MODELS_DIR: mesh.modelsDir, INTRA_OP_THREADS: "1", ...options.inferenceEnv };
      mesh.inferenceEnv = inferenceEnv;
      const replicas = options.inferenceReplicas ?? 1;
      const started = await Promise.all([
        startService("postprocess", {
          label: "postprocess",
          env: options.postprocessEnv ?? {},
          logDir: mesh.logDir,
          ...readyTls,
        }),
        ...Array.from({ length: replicas }, (_, i) =>
          startService("inference", {
            label: `inference-${i + 1}`,
            env: inferenceEnv,
            logDir: mesh.logDir,
            ...readyTls,
          }),
        ),
      ]);
      mesh.postprocess = started[0] as ServiceProcess;
      mesh.inference.push(...started.slice(1));
      mesh.orchestratorEnv = {
        DATA_DIR: mesh.dataDir,
        INFERENCE_URLS: mesh.inference.map((p) => p.address).join(","),
        POSTPROCESS_URLS: mesh.postprocess.address,
        // No device service in these tests: an address where nothing listens.
        DEVICE_URLS: `127.0.0.1:${await unusedPort()}`,
        HEALTH_INTERVAL_MS: "500",
        ...options.orchestratorEnv,
      };
      await mesh.startOrchestrator();
      return mesh;
    } catch (err) {
      await mesh.stop();
      throw err;
    }
  }

  /** (Re)starts the orchestrator over the same data directory; clients follow it to its new address. */
  async startOrchestrator(extraEnv: Record<string, string> = {}): Promise<void> {
    this.orchestratorStarts++;
    this.orchestrator = await startService("orchestrator", {
      label: `orchestrator-${this.orchestratorStarts}`,
      env: { ...this.orchestratorEnv, ...extraEnv },
      logDir: this.logDir,
      ...(this.options.tls ? { readyTls: this.options.tls } : {}),
    });
    this.clients?.close();
    this.clients = connectOrchestrator(this.orchestrator.address, this.options);
  }

  /**
   * Another orchestrator process with the same settings (several replicas on one PostgreSQL database, the
   * same DATA_DIR for the artifact files), and clients of it. `stop` kills it with the rest.
   */
  async startAnotherOrchestrator(
    label: string,
    extraEnv: Record<string, string> = {},
  ): Promise<{ process: ServiceProcess; clients: OrchestratorClients }> {
    const process = await startService("orchestrator", {
      label,
      env: { ...this.orchestratorEnv, ...extraEnv },
      logDir: this.logDir,
      ...(this.options.tls ? { readyTls: this.options.tls } : {}),
    });
    this.others.push(process);
    const clients = connectOrchestrator(process.address, this.options);
    this.otherClients.push(clients);
    return { process, clients };
  }

  /**
   * Kills every inference replica and starts `count` new ones; the orchestrator started next uses them
   * (the one running keeps its old list).
   */
  async replaceInference(count: number): Promise<ServiceProcess[]> {
    await Promise.all(this.inference.map((p) => p.kill("SIGKILL")));
    const started = this.inference.length;
    const replicas = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        startService("inference", {
          label: `inference-${started + i + 1}`,
          env: this.inferenceEnv,
          logDir: this.logDir,
        }),
      ),
    );
    this.inference.splice(0, this.inference.length, ...replicas);
    this.orchestratorEnv.INFERENCE_URLS = replicas.map((p) => p.address).join(",");
    return replicas;
  }

  /** Starts postprocess again on the port it had (after it was killed), so the orchestrator finds it. */
  async restartPostprocess(): Promise<ServiceProcess> {
    await this.postprocess.kill("SIGKILL");
    this.postprocess = await startService("postprocess", {
      label: `postprocess-${Date.now()}`,
      env: {},
      logDir: this.logDir,
      port: this.postprocess.port,
    });
    return this.postprocess;
  }

  /** The inference process listening on `address` (a session's `worker`). */
  inferenceAt(address: string): ServiceProcess {
    const replica = this.inference.find((p) => p.address === address);
    if (!replica) throw new Error(`no inference replica at ${address}`);
    return replica;
  }

  /** The orchestrator's log so far, for a failing assertion's message. */
  orchestratorLog(lines = 30): string {
    return tail(this.orchestrator.logFile, lines);
  }

  async stop(): Promise<void> {
    this.clients?.close();
    for (const clients of this.otherClients) clients.close();
    const all = [...this.inference, this.postprocess, this.orchestrator, ...this.others].filter(Boolean);
    await Promise.all(all.map((p) => p.kill("SIGKILL")));
    // DMESH_KEEP_FAULT_LOGS=1 keeps the directory (logs, database, artifacts) for a look after a failure.
    if (process.env.DMESH_KEEP_FAULT_LOGS) console.log(`[faults] kept ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
