import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { orchestratorClients } from "@dmesh/cli/clients";
import { NODE_FLAGS, serviceEntry } from "@dmesh/cli/mesh-launcher";
import { runWorkflow } from "@dmesh/cli/run-workflow";
import { type MeshEvent, MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/prometheus.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

const CLI = join(import.meta.dirname, "../../packages/cli/dist/main.js");

let mesh: TestMesh;
let restarted: ChildProcess | undefined;
const watch = new AbortController();
const seen: MeshEvent[] = [];
let watching: Promise<void>;

beforeAll(async () => {
  mesh = await startTestMesh({ HEALTH_INTERVAL_MS: "200" });
  const stream = orchestratorClients(mesh.url).mesh.watchMeshEvents(
    {
      kinds: [
        MeshEventKind.REPLICA_UP,
        MeshEventKind.REPLICA_DOWN,
        MeshEventKind.MODEL_LOADED,
        MeshEventKind.MODEL_UNLOADED,
        MeshEventKind.SESSION,
      ],
    },
    { signal: watch.signal },
  );
  watching = (async () => {
    try {
      for await (const { event } of stream) if (event) seen.push(event);
    } catch (err) {
      if (!watch.signal.aborted) throw err;
    }
  })();
});
afterAll(async () => {
  watch.abort();
  await watching?.catch(() => {});
  if (restarted && restarted.exitCode === null) {
    const exited = new Promise((r) => restarted?.once("exit", r));
    restarted.kill("SIGTERM");
    await exited;
  }
  await mesh?.dispose();
});

const replica = (kind: MeshEventKind, domain: string, address: string) => (e: MeshEvent) =>
  e.kind === kind &&
  e.detail.case === "replica" &&
  e.detail.value.domain === domain &&
  e.detail.value.address === address;

const eventually = (what: string, match: (e: MeshEvent) => boolean, from = 0) =>
  waitFor(
    what,
    async () => seen.slice(from).findIndex(match),
    (i) => i >= 0,
    20_000,
  ).then((i) => from + i);

describe("WatchMeshEvents", () => {
  it("opens with every replica's state", async () => {
    await eventually(
      "inference up",
      replica(MeshEventKind.REPLICA_UP, "inference", mesh.address("inference")),
    );
    await eventually(
      "postprocess up",
      replica(MeshEventKind.REPLICA_UP, "postprocess", mesh.address("postprocess")),
    );
  });

  it("tells a session's lifecycle, state by state", async () => {
    const from = seen.length;
    const { session } = await runWorkflow(orchestratorClients(mesh.url), {
      workflowId: "txt2img",
      spec: { size: { width: 64, height: 64 }, scheduler: { steps: 2 }, conditioning: { prompt: "a gate" } },
      out: join(mesh.dir, "out"),
    });
    const id = session?.id ?? "";
    await eventually(
      "the session completed",
      (e) =>
        e.detail.case === "session" &&
        e.detail.value.sessionId === id &&
        e.detail.value.state === SessionState.COMPLETED,
      from,
    );
    const states = seen
      .slice(from)
      .flatMap((e) =>
        e.detail.case === "session" && e.detail.value.sessionId === id ? [e.detail.value] : [],
      );
    expect(states.map((s) => SessionState[s.state])).toEqual(["QUEUED", "RUNNING", "COMPLETED"]);
    expect(states.every((s) => s.workflowId === "txt2img" && s.tenant === "default")).toBe(true);
  });

  it("sees an inference replica go down when its process is killed, and come back when it restarts", async () => {
    const address = mesh.address("inference");
    const from = seen.length;
    const old = mesh.children.inference;
    const gone = new Promise((r) => old.once("exit", r));
    old.kill("SIGKILL");
    await gone;
    const down = await eventually(
      "inference down",
      replica(MeshEventKind.REPLICA_DOWN, "inference", address),
      from,
    );
    const event = seen[down];
    expect(event?.detail.case === "replica" && event.detail.value.reason).toBeTruthy();
    expect(event?.time).toBeDefined();

    // The same service on the same port, as a supervisor would restart it.
    restarted = spawn(process.execPath, [...NODE_FLAGS.inference, serviceEntry("inference")], {
      env: {
        ...process.env,
        HOST: "127.0.0.1",
        PORT: String(mesh.ports.inference),
        MODELS_DIR: join(mesh.dir, "models"),
        DEVICE_URL: mesh.address("device"),
        LOG_LEVEL: "warn",
      },
      stdio: "ignore",
    });
    await eventually("inference up again", replica(MeshEventKind.REPLICA_UP, "inference", address), down);
  });

  it("tells models unloaded and loaded again", async () => {
    const clients = orchestratorClients(mesh.url);
    const from = seen.length;
    // Idle for at least a second, then unloaded by the mesh's cleanup.
    await new Promise((r) => setTimeout(r, 1100));
    const { unloadedModels } = await clients.mesh.cleanup({ unloadIdleSeconds: 1 });
    expect(unloadedModels.length).toBeGreaterThan(0);
    const model = (unloadedModels[0] ?? "").split("/").pop() ?? "";
    const unloaded = await eventually(
      "a model unloaded",
      (e) =>
        e.kind === MeshEventKind.MODEL_UNLOADED &&
        e.detail.case === "model" &&
        e.detail.value.model === model,
      from,
    );
    await runWorkflow(clients, {
      workflowId: "txt2img",
      spec: {
        size: { width: 64, height: 64 },
        scheduler: { steps: 1 },
        models: { base: model },
        conditioning: { prompt: "a gate" },
      },
      out: join(mesh.dir, "out"),
    });
    await eventually(
      "the model loaded again",
      (e) =>
        e.kind === MeshEventKind.MODEL_LOADED && e.detail.case === "model" && e.detail.value.model === model,
      unloaded,
    );
  });

  it("dmesh events prints them, filtered by kind", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [CLI, "events", "--url", mesh.url, "--kinds", "replica", "--count", "2", "--for", "20"],
      { timeout: 30_000 },
    );
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines)
      expect(line).toMatch(/^\d{4}-\d\d-\d\dT\S+Z REPLICA_UP\s+(inference|postprocess) 127\.0\.0\.1:\d+$/);
  });

  it("refuses an unknown kind, naming the field", async () => {
    // A value from a newer client that this orchestrator does not know.
    const stream = orchestratorClients(mesh.url).mesh.watchMeshEvents({
      kinds: [MeshEventKind.SESSION, 99 as MeshEventKind],
    });
    await expect(
      (async () => {
        for await (const _ of stream) return;
      })(),
    ).rejects.toThrow(/kinds\[1\]/);
  });
});
