import { BatchAction } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { SessionAction, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, tinySpec } from "../faults/support/sessions.js";
import { connectOrchestrator, type OrchestratorClients, TestMesh } from "../faults/support/test-mesh.js";
import { keysFile, outcome, scratchDir, type TestTenant, tenant } from "./support/door-mesh.js";

// One running slot makes the bound exact: while another tenant's image waits, the batch can finish at most
// the one item that holds the slot.
const acme = tenant("acme");
const globex = tenant("globex");
const initech = tenant("initech");
const BATCH_ITEMS = 200;

const scratch = scratchDir();
let mesh: TestMesh;
const clients = new Map<string, OrchestratorClients>();
const as = (t: TestTenant) => clients.get(t.name) as OrchestratorClients;
let batchId = "";

beforeAll(async () => {
  mesh = await TestMesh.start({
    orchestratorEnv: {
      API_KEYS_FILE: scratch.write("api-keys", keysFile([acme, globex, initech])),
      MAX_CONCURRENT_SESSIONS: "1",
      TENANT_QUOTAS: "initech:running=1,queued=1,batch_items=50",
    },
  });
  for (const t of [acme, globex, initech])
    clients.set(t.name, connectOrchestrator(mesh.orchestrator.address, { apiKey: t.key }));
  // acme's 200-item batch (tiny images, 2 steps each), running and left to run.
  const { batch } = await as(acme).processing.createBatch({
    workflowId: "txt2img",
    items: Array.from({ length: BATCH_ITEMS }, (_, i) => tinySpec({ seed: i + 1, steps: 2 })),
  });
  batchId = batch?.id ?? "";
  for await (const _ of as(acme).processing.executeBatch({ batchId })) break;
  await eventually(
    async () => ((await batchDone()) >= 2 ? true : undefined),
    60_000,
    "the batch to be under way",
  );
}, 180_000);
afterAll(async () => {
  await as(acme)
    ?.processing.controlBatch({ batchId, action: BatchAction.CANCEL })
    .catch(() => {});
  for (const c of clients.values()) c.close();
  await mesh?.stop();
  scratch.remove();
});

/** acme's batch items finished so far. */
async function batchDone(): Promise<number> {
  const { batch } = await as(acme).processing.getBatch({ batchId });
  return (batch?.completed ?? 0) + (batch?.failed ?? 0) + (batch?.cancelled ?? 0);
}

/**
 * Submits one image for `t` and counts acme's batch items that finished between the submit and the moment
 * the image started running, by the orchestrator's clock (the sessions' timestamps): the running slots it
 * waited for.
 */
async function slotsWaited(t: TestTenant, priority = 0): Promise<number> {
  let submitted: number | undefined;
  let started: number | undefined;
  for await (const { event } of as(t).processing.executeWorkflow(
    { workflowId: "txt2img", spec: tinySpec({ seed: 99, steps: 2 }), priority },
    { timeoutMs: 120_000 },
  )) {
    const session = event?.session;
    if (!session) continue;
    submitted ??= ms(session.createdAt);
    if (session.state === SessionState.RUNNING) started ??= ms(session.updatedAt);
    if (session.state === SessionState.FAILED) throw new Error(session.error);
  }
  if (submitted === undefined || started === undefined) throw new Error("the image never ran");
  const { sessions } = await as(acme).processing.listSessions({ batchId, pageSize: 1000 });
  return sessions.filter((s) => {
    const finished = ms(s.updatedAt);
    return s.state === SessionState.COMPLETED && finished > (submitted ?? 0) && finished <= (started ?? 0);
  }).length;
}

function ms(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : 0;
}

describe(`a single image behind another tenant's ${BATCH_ITEMS}-item batch`, () => {
  it("waits for one running slot at most", async () => {
    const waited = [await slotsWaited(globex), await slotsWaited(globex), await slotsWaited(globex)];
    console.info(
      `[fairness] globex's image waited for ${waited.join(", ")} of acme's batch items (bound: 1)`,
    );
    for (const n of waited) expect(n).toBeLessThanOrEqual(1);
  });

  it("within one tenant, waits its turn behind the batch's queued items unless its priority is higher", async () => {
    const behind = await slotsWaited(acme);
    const ahead = await slotsWaited(acme, 10);
    console.info(`[fairness] acme's own image waited ${behind} items at priority 0, ${ahead} at priority 10`);
    expect(behind).toBeGreaterThan(1);
    expect(ahead).toBeLessThanOrEqual(1);
  });
});

describe("per-tenant quotas", () => {
  it("refuses a batch larger than the tenant's batch_items, naming the limit", async () => {
    const big = await outcome(() =>
      as(initech).processing.createBatch({
        workflowId: "txt2img",
        items: Array.from({ length: 51 }, (_, i) => tinySpec({ seed: i, steps: 2 })),
      }),
    );
    expect(big).toMatchObject({ code: "ResourceExhausted" });
    expect(big !== "ok" && big.message).toContain("batch_items=50");
    expect(
      await outcome(() => as(acme).processing.createBatch({ workflowId: "txt2img", items: [tinySpec()] })),
    ).toBe("ok");
  });

  it("refuses a submit beyond the tenant's queued sessions, naming the limit, while others still submit", async () => {
    // Three at once, detached: one may run (running=1), one may wait (queued=1), the third is refused.
    const submit = async () => {
      for await (const { event } of as(initech).processing.executeWorkflow({
        workflowId: "txt2img",
        spec: tinySpec({ steps: 2 }),
        detach: true,
      }))
        return event?.session?.id ?? "";
      return "";
    };
    const results = await Promise.all([0, 1, 2].map(() => outcome(submit)));
    const refused = results.filter((r) => typeof r !== "string");
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.code).toBe("ResourceExhausted");
      expect(r.message).toContain("queued=1");
    }
    expect(await slotsWaited(globex)).toBeLessThanOrEqual(1);
    const { sessions } = await as(initech).processing.listSessions({ states: [SessionState.QUEUED] });
    for (const s of sessions)
      await as(initech)
        .processing.controlSession({ sessionId: s.id, action: SessionAction.CANCEL })
        .catch(() => {});
  });
});
