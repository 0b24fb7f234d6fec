import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orchestratorClients } from "@dmesh/cli/clients";
import type { ServiceName } from "@dmesh/cli/mesh-launcher";
import { runWorkflow } from "@dmesh/cli/run-workflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  prometheusMissing,
  promtoolCheck,
  type RunningPrometheus,
  startPrometheus,
  waitFor,
} from "../support/prometheus.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

const missing = prometheusMissing();
const SERVICES: ServiceName[] = ["orchestrator", "inference", "postprocess", "device"];
const RUNS = 2;

let mesh: TestMesh;
let prometheus: RunningPrometheus | undefined;
let promDir: string;

const scrape = async (name: ServiceName) => {
  const res = await fetch(`http://${mesh.metricsTargets[name]}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
};

beforeAll(async () => {
  mesh = await startTestMesh({ HEALTH_INTERVAL_MS: "500" });
  const clients = orchestratorClients(mesh.url);
  for (let i = 0; i < RUNS; i++) {
    const { files } = await runWorkflow(clients, {
      workflowId: "txt2img",
      spec: { size: { width: 64, height: 64 }, scheduler: { steps: 3 }, conditioning: { prompt: "a kite" } },
      out: join(mesh.dir, "out"),
    });
    expect(files).toHaveLength(1);
  }
});
afterAll(async () => {
  await prometheus?.stop();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
  await mesh?.dispose();
});

describe("metrics of a running mesh", () => {
  it("every service answers /metrics with the gRPC metrics' standard names and its own dmesh_ ones", async () => {
    const orchestrator = await scrape("orchestrator");
    // The public face (connect-node) counts the client's calls; its calls to the domain services are clients'.
    expect(orchestrator).toMatch(
      /grpc_server_handled_total\{grpc_type="server_stream",grpc_service="dmesh\.processing\.v1\.ProcessingService",grpc_method="ExecuteWorkflow",grpc_code="OK"\} 2\b/,
    );
    expect(orchestrator).toMatch(
      /grpc_client_handled_total\{grpc_type="server_stream",grpc_service="dmesh\.inference\.v1\.InferenceService",grpc_method="Generate",grpc_code="OK"\} 2\b/,
    );
    expect(orchestrator).toMatch(/dmesh_sessions\{state="completed",tenant="default"\} 2\b/);
    expect(orchestrator).toMatch(/dmesh_workflow_step_seconds_count\{operation="generate"\} 2\b/);
    expect(orchestrator).toMatch(/dmesh_store_commit_seconds_count [1-9]/);
    expect(orchestrator).toMatch(/^process_cpu_seconds_total /m);

    const inference = await scrape("inference");
    expect(inference).toMatch(
      /grpc_server_started_total\{grpc_type="server_stream",grpc_service="dmesh\.inference\.v1\.InferenceService",grpc_method="Generate"\} 2\b/,
    );
    expect(inference).toMatch(/dmesh_inference_generations_total\{result="completed"\} 2\b/);
    expect(inference).toMatch(/dmesh_inference_denoise_step_seconds_count 6\b/);
    expect(inference).toMatch(/dmesh_inference_unet_batch_size_bucket\{le="2"\} 6\b/);
    expect(inference).toMatch(/dmesh_inference_queue_wait_seconds_count 2\b/);
    expect(inference).toMatch(/dmesh_inference_model_loads_total\{result="ok"\} [1-9]/);
    expect(inference).toMatch(/^dmesh_inference_queue_depth 0$/m);
    expect(inference).toMatch(/^dmesh_inference_models_loaded [1-9]/m);

    const postprocess = await scrape("postprocess");
    expect(postprocess).toMatch(/dmesh_postprocess_images_total\{operation="encode"\} 2\b/);
    expect(postprocess).toMatch(/^dmesh_postprocess_pixel_budget_used_pixels 0$/m);

    const device = await scrape("device");
    expect(device).toMatch(/dmesh_device_memory_total_bytes\{device="cpu",kind="[a-z_]+"\} [1-9]/);
  });

  it("labels carry no ids or prompts", async () => {
    for (const name of SERVICES) {
      const text = await scrape(name);
      expect(text, name).not.toMatch(/a kite/);
      // A UUID (session, request or artifact id) in any label value.
      expect(text, name).not.toMatch(/="[0-9a-f]{8}-[0-9a-f]{4}-/);
    }
  });

  it.skipIf(missing)(
    `promtool check metrics passes on every endpoint${missing ? ` (skipped: ${missing})` : ""}`,
    async () => {
      for (const name of SERVICES) expect(promtoolCheck(await scrape(name)), name).toBe("");
    },
  );

  it.skipIf(missing)(
    `a Prometheus server scrapes every service and returns the generation count${missing ? ` (skipped: ${missing})` : ""}`,
    async () => {
      promDir = mkdtempSync(join(tmpdir(), "dmesh-prometheus-"));
      prometheus = await startPrometheus(
        promDir,
        Object.fromEntries(SERVICES.map((name) => [`dmesh-${name}`, [mesh.metricsTargets[name]]])),
      );
      const server = prometheus;
      const targets = await waitFor(
        "every target scraped and up",
        () => server.targets(),
        (t) => t.length === SERVICES.length && t.every((x) => x.health === "up"),
      );
      expect(targets.map((t) => t.job).sort()).toEqual(SERVICES.map((s) => `dmesh-${s}`).sort());
      const generations = await waitFor(
        "the generation count",
        () =>
          server.query('sum(dmesh_inference_generations_total{job="dmesh-inference",result="completed"})'),
        (v) => v !== undefined,
      );
      expect(generations).toBe(RUNS);
      expect(
        await server.query(
          'sum(grpc_server_handled_total{job="dmesh-postprocess",grpc_method="Process",grpc_code="OK"})',
        ),
      ).toBe(RUNS);
    },
  );
});
