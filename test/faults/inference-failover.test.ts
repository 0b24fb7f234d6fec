import {
  type Session,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceProcess } from "./support/service-process.js";
import { artifactBytes, collect, tinySpec } from "./support/sessions.js";
import { TestMesh } from "./support/test-mesh.js";

// An inference process dies (SIGKILL) or freezes (SIGSTOP) in the middle of a generation stream.
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await TestMesh.start({
    inferenceReplicas: 2,
    orchestratorEnv: { MAX_ATTEMPTS: "3", RETRY_BACKOFF_MS: "100", STREAM_IDLE_TIMEOUT_MS: "1500" },
  });
});
afterAll(async () => {
  for (const replica of mesh?.inference ?? []) if (replica.isRunning()) process.kill(replica.pid, "SIGCONT");
  await mesh?.stop();
});

const report = (name: string, value: string) => console.log(`[faults] ${name}: ${value}`);
const SPEC = tinySpec({ size: 256, steps: 30, seed: 2024, prompt: "a windmill in fog" });

interface Interrupted {
  events: { session: Session; at: number }[];
  victim: ServiceProcess;
  stepAtFault: number;
  faultAt: number;
}

/** Runs SPEC through the orchestrator and, once `atStep` is reached, does `fault` to the replica generating it. */
async function runWithFault(
  atStep: number,
  fault: (victim: ServiceProcess) => void | Promise<void>,
): Promise<Interrupted> {
  const events: Interrupted["events"] = [];
  let victim: ServiceProcess | undefined;
  let stepAtFault = 0;
  let faultAt = 0;
  for await (const { event } of mesh.clients.processing.executeWorkflow(
    { workflowId: "txt2img", spec: SPEC },
    { timeoutMs: 50_000 },
  )) {
    const session = event?.session;
    if (!session) continue;
    events.push({ session, at: performance.now() });
    if (!victim && event.kind === SessionEventKind.PROGRESS && session.denoiseStep >= atStep) {
      victim = mesh.inferenceAt(session.worker);
      stepAtFault = session.denoiseStep;
      faultAt = performance.now();
      await fault(victim);
    }
  }
  if (!victim) throw new Error(`the generation never reached step ${atStep}`);
  return { events, victim, stepAtFault, faultAt };
}

/** The denoising steps the other replica reported after the fault, and when it reported the first. */
function afterFailover(run: Interrupted) {
  const later = run.events.filter((e) => e.at > run.faultAt && e.session.worker !== run.victim.address);
  const steps = later.map((e) => e.session.denoiseStep).filter((s) => s > 0);
  return { steps, firstAt: later[0]?.at ?? Number.NaN, worker: later[0]?.session.worker ?? "" };
}

describe("an inference replica killed mid-stream", () => {
  let straightBytes: Buffer;

  beforeAll(async () => {
    const straight = (
      await collect(mesh.clients.processing.executeWorkflow({ workflowId: "txt2img", spec: SPEC }))
    ).at(-1)?.session;
    straightBytes = await artifactBytes(mesh.clients, straight?.artifactIds[0] ?? "");
  });

  it("continues on the other replica from its checkpoint and makes the same image", async () => {
    const run = await runWithFault(10, (victim) => victim.kill("SIGKILL"));
    const last = run.events.at(-1)?.session;
    expect({ state: SessionState[last?.state ?? 0], error: last?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    expect(last?.attempts).toBeGreaterThan(1);
    expect(last?.worker).not.toBe(run.victim.address);
    expect(last?.timings.find((t) => t.stepId === "generate")?.worker).toBe(last?.worker);
    // Resumed, not restarted: the survivor reported none of the steps the checkpoint already covered.
    const { steps, firstAt } = afterFailover(run);
    expect(steps.length).toBeGreaterThan(0);
    expect(Math.min(...steps)).toBeGreaterThan(run.stepAtFault - 1);
    expect(steps.length).toBeLessThan(30);
    // Bit-identical to the uninterrupted run: the checkpoint carried latents, scheduler and RNG state.
    expect((await artifactBytes(mesh.clients, last?.artifactIds[0] ?? "")).equals(straightBytes)).toBe(true);
    report(
      "kill -9 of inference mid-stream (2 replicas)",
      `killed at step ${run.stepAtFault}/30; the other replica's first event ${(firstAt - run.faultAt).toFixed(0)} ms later, resuming at step ${Math.min(...steps)}; attempts ${last?.attempts}; same bytes as uninterrupted`,
    );
  });

  it("fails after MAX_ATTEMPTS with the reason once no replica is left", async () => {
    const [survivor] = mesh.inference.filter((p) => p.isRunning());
    if (!survivor) throw new Error("no replica left");
    const run = await runWithFault(5, (victim) => victim.kill("SIGKILL"));
    expect(run.victim).toBe(survivor);
    const last = run.events.at(-1)?.session;
    expect(last?.state).toBe(SessionState.FAILED);
    expect(last?.attempts).toBe(3);
    expect(last?.error).toMatch(
      /^inference on 127\.0\.0\.1:\d+ failed \(Unavailable: .+\); gave up after 3 attempt\(s\)$/,
    );
    const failedAt = run.events.at(-1)?.at ?? Number.NaN;
    report(
      "kill -9 of the last inference replica",
      `FAILED ${(failedAt - run.faultAt).toFixed(0)} ms after the kill: "${last?.error}"`,
    );
  });
});

describe("an inference replica frozen mid-stream", () => {
  let replacement: ServiceProcess[] = [];

  beforeAll(async () => {
    // The previous block killed both replicas: start two fresh ones and point a fresh orchestrator at them.
    await mesh.orchestrator.kill();
    replacement = await mesh.replaceInference(2);
    await mesh.startOrchestrator();
  });

  it("is abandoned after STREAM_IDLE_TIMEOUT_MS and the session finishes elsewhere", async () => {
    expect(replacement).toHaveLength(2);
    const run = await runWithFault(10, (victim) => {
      process.kill(victim.pid, "SIGSTOP");
    });
    process.kill(run.victim.pid, "SIGCONT");
    const last = run.events.at(-1)?.session;
    expect({ state: SessionState[last?.state ?? 0], error: last?.error }).toEqual({
      state: "COMPLETED",
      error: "",
    });
    expect(last?.worker).not.toBe(run.victim.address);
    const { steps, firstAt } = afterFailover(run);
    expect(Math.min(...steps)).toBeGreaterThan(run.stepAtFault - 1);
    expect(firstAt - run.faultAt).toBeGreaterThanOrEqual(1400);
    report(
      "SIGSTOP of inference mid-stream (STREAM_IDLE_TIMEOUT_MS=1500)",
      `frozen at step ${run.stepAtFault}; continued on the other replica ${(firstAt - run.faultAt).toFixed(0)} ms later from step ${Math.min(...steps)}`,
    );
  });
});
