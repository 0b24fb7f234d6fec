import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { orchestratorClients } from "@dmesh/cli/clients";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../support/otlp-receiver.js";
import { waitFor } from "../support/prometheus.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

const SERVER = 2;
const CLIENT = 3;

let receiver: OtlpReceiver;
let mesh: TestMesh;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  // Spans leave each process in batches every 100 ms (the SDK's standard OTEL_BSP_SCHEDULE_DELAY).
  mesh = await startTestMesh({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: "100",
    LOG_LEVEL: "info",
  });
});
afterAll(async () => {
  await mesh?.dispose();
  await receiver?.close();
});

describe("one trace across the mesh", () => {
  it("runs from the caller's traceparent through the orchestrator, inference and postprocess", async () => {
    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const requestId = `trace-test-${randomBytes(4).toString("hex")}`;
    const clients = orchestratorClients(mesh.url);
    let state = SessionState.UNSPECIFIED;
    for await (const { event } of clients.processing.executeWorkflow(
      {
        workflowId: "txt2img",
        spec: {
          size: { width: 64, height: 64 },
          scheduler: { steps: 2 },
          conditioning: { prompt: "a bell" },
        },
      },
      {
        headers: { traceparent: `00-${traceId}-${callerSpanId}-01`, "x-request-id": requestId },
        timeoutMs: 60_000,
      },
    )) {
      state = event?.session?.state ?? state;
    }
    expect(state).toBe(SessionState.COMPLETED);

    const ours = () => receiver.spans.filter((s) => s.traceId === traceId);
    const find = (service: string, name: string, kind?: number) =>
      ours().find((s) => s.service === service && s.name === name && (kind === undefined || s.kind === kind));
    // Every process exports on its own schedule: wait until each hop's server span has arrived.
    await waitFor(
      "the spans of every hop",
      async () => ours().length,
      () =>
        find("orchestrator", "dmesh.processing.v1.ProcessingService/ExecuteWorkflow") !== undefined &&
        find("inference", "dmesh.inference.v1.InferenceService/Generate") !== undefined &&
        find("postprocess", "dmesh.postprocess.v1.PostprocessService/Process") !== undefined &&
        find("inference", "model run vae_decoder") !== undefined,
      20_000,
    );

    const byId = new Map(ours().map((s) => [s.spanId, s]));
    const chain = (span: ReceivedSpan): string[] => {
      const names: string[] = [];
      for (let s: ReceivedSpan | undefined = span; s; s = byId.get(s.parentSpanId))
        names.push(`${s.service}:${s.name}`);
      return names;
    };

    const execute = find("orchestrator", "dmesh.processing.v1.ProcessingService/ExecuteWorkflow", SERVER);
    // The orchestrator continued the caller's trace.
    expect(execute?.parentSpanId).toBe(callerSpanId);
    expect(execute?.attributes["rpc.system.name"]).toBe("connect_rpc");
    expect(execute?.attributes["dmesh.request_id"]).toBe(requestId);

    // Inference's server span descends from the orchestrator's client span, the generate step, the session
    // and the call that submitted it; its model runs are its children.
    const generate = find(
      "inference",
      "dmesh.inference.v1.InferenceService/Generate",
      SERVER,
    ) as ReceivedSpan;
    expect(chain(generate)).toEqual([
      "inference:dmesh.inference.v1.InferenceService/Generate",
      "orchestrator:dmesh.inference.v1.InferenceService/Generate",
      "orchestrator:step generate",
      "orchestrator:session txt2img",
      "orchestrator:dmesh.processing.v1.ProcessingService/ExecuteWorkflow",
    ]);
    expect(byId.get(generate.parentSpanId)?.kind).toBe(CLIENT);
    expect(generate.attributes["rpc.status_code"]).toBe("OK");
    const unetRuns = ours().filter((s) => s.service === "inference" && s.name === "model run unet");
    expect(unetRuns).toHaveLength(2);
    for (const run of unetRuns) expect(byId.get(run.parentSpanId)?.service).toBe("inference");
    expect(ours().some((s) => s.service === "inference" && s.name === "model run text_encoder")).toBe(true);

    const processSpan = find(
      "postprocess",
      "dmesh.postprocess.v1.PostprocessService/Process",
      SERVER,
    ) as ReceivedSpan;
    expect(chain(processSpan).slice(1)).toEqual([
      "orchestrator:dmesh.postprocess.v1.PostprocessService/Process",
      "orchestrator:step encode",
      "orchestrator:session txt2img",
      "orchestrator:dmesh.processing.v1.ProcessingService/ExecuteWorkflow",
    ]);

    // Log lines carry the trace id beside the request id.
    const inferenceLog = readFileSync(join(mesh.dir, "logs", "inference.log"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg?: string; trace_id?: string; requestId?: string });
    const finished = inferenceLog.find((l) => l.msg === "generation finished" && l.trace_id === traceId);
    expect(finished?.requestId).toBe(requestId);
  });

  it("a call without a traceparent starts a trace of its own at the orchestrator", async () => {
    const before = new Set(receiver.spans.map((s) => s.traceId));
    await orchestratorClients(mesh.url).processing.listWorkflows({});
    const span = await waitFor(
      "the ListWorkflows span",
      async () =>
        receiver.spans.find(
          (s) => s.name === "dmesh.processing.v1.ProcessingService/ListWorkflows" && !before.has(s.traceId),
        ),
      (s) => s !== undefined,
      10_000,
    );
    expect(span?.parentSpanId).toBe("");
    expect(span?.statusCode).toBe(1);
  });
});
