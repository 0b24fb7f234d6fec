import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { BatchAction } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { SessionAction, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { WorkflowSchema } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { ServerReflection } from "@dmesh/contracts/grpc/reflection/v1/reflection_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import { writeTinySafetyClassifier } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactBytes, collect, eventually, tinySpec } from "../faults/support/sessions.js";
import { connectOrchestrator, type OrchestratorClients, TestMesh } from "../faults/support/test-mesh.js";
import { pngInfo } from "../support/png-info.js";
import {
  auditLines,
  drain,
  keysFile,
  outcome,
  scratchDir,
  type TestTenant,
  tenant,
} from "./support/door-mesh.js";

const acme = tenant("acme");
const globex = tenant("globex");
// Its default safety policy rejects every image (threshold 0 flags them all).
const initech = tenant("initech");
const ops = tenant("ops", true);
const ALLOWED_ORIGIN = "https://app.example.com";

const scratch = scratchDir();
let keys: string;
let mesh: TestMesh;
const clients = new Map<string, OrchestratorClients>();
const as = (t: TestTenant) => clients.get(t.name) as OrchestratorClients;

beforeAll(async () => {
  keys = scratch.write("api-keys", keysFile([acme, globex, initech, ops]));
  const safetyDir = `${scratch.dir}/safety`;
  await writeTinySafetyClassifier(safetyDir, { seed: 9 });
  mesh = await TestMesh.start({
    orchestratorEnv: {
      API_KEYS_FILE: keys,
      CORS_ORIGINS: ALLOWED_ORIGIN,
      MAX_CONCURRENT_SESSIONS: "2",
      // Callbacks allowed there, but no tenant has a webhook secret.
      WEBHOOK_ALLOWED_URLS: "http://127.0.0.1:9/",
    },
    postprocessEnv: {
      SAFETY_MODEL_DIR: safetyDir,
      SAFETY_POLICY: "pass,initech=reject",
      SAFETY_THRESHOLD: "0",
    },
    apiKey: ops.key,
  });
  for (const t of [acme, globex, initech, ops])
    clients.set(t.name, connectOrchestrator(mesh.orchestrator.address, { apiKey: t.key }));
}, 120_000);
afterAll(async () => {
  for (const c of clients.values()) c.close();
  await mesh?.stop();
  scratch.remove();
});

/** A finished session of `t`'s (a tiny txt2img), its id and artifact. */
async function generate(t: TestTenant, seed = 11, requestId = "") {
  const events = await collect(
    as(t).processing.executeWorkflow(
      { workflowId: "txt2img", spec: tinySpec({ seed, steps: 2 }), requestId },
      { timeoutMs: 60_000 },
    ),
  );
  const session = events.at(-1)?.session;
  if (!session) throw new Error("no session");
  return session;
}

describe("API keys", () => {
  it("refuses no key and a wrong key (UNAUTHENTICATED) over gRPC, Connect and gRPC-Web; health and reflection stay open", async () => {
    const anonymous = connectOrchestrator(mesh.orchestrator.address);
    const stranger = connectOrchestrator(mesh.orchestrator.address, { apiKey: "dmesh_not_a_key" });
    try {
      const list = (c: OrchestratorClients) => outcome(() => c.processing.listSessions({}));
      expect(await list(anonymous)).toMatchObject({ code: "Unauthenticated" });
      expect(await list(stranger)).toEqual({
        code: "Unauthenticated",
        message: "unknown API key",
        field: null,
      });
      expect(await list(as(acme))).toBe("ok");

      const bearer =
        (key: string): Interceptor =>
        (next) =>
        (req) => {
          req.header.set("authorization", `Bearer ${key}`);
          return next(req);
        };
      const baseUrl = `http://${mesh.orchestrator.address}`;
      for (const make of [createConnectTransport, createGrpcWebTransport]) {
        const web = (interceptors: Interceptor[]) =>
          createClient(ProcessingService, make({ baseUrl, httpVersion: "1.1", interceptors }));
        expect(await outcome(() => web([]).listWorkflows({}))).toMatchObject({ code: "Unauthenticated" });
        expect(await outcome(() => web([bearer("wrong")]).listWorkflows({}))).toMatchObject({
          code: "Unauthenticated",
        });
        expect(await outcome(() => web([bearer(globex.key)]).listWorkflows({}))).toBe("ok");
      }

      const transport = createGrpcTransport({ address: mesh.orchestrator.address });
      try {
        expect((await createClient(Health, transport).check({ service: "" })).status).toBe(Serving.SERVING);
        const answers = await drain(
          createClient(ServerReflection, transport).serverReflectionInfo(
            (async function* () {
              yield { messageRequest: { case: "listServices" as const, value: "" } };
            })(),
            { timeoutMs: 5000 },
          ),
        );
        const listed = answers[0]?.messageResponse;
        expect(listed?.case === "listServicesResponse" && listed.value.service.map((s) => s.name)).toContain(
          "dmesh.processing.v1.ProcessingService",
        );
      } finally {
        transport.close();
      }
    } finally {
      anonymous.close();
      stranger.close();
    }
  });

  it("lets only an admin key run Cleanup (PERMISSION_DENIED for others)", async () => {
    expect(
      await outcome(() => as(acme).mesh.cleanup({ pruneSessionsOlderThanSeconds: 1, dryRun: true })),
    ).toEqual({
      code: "PermissionDenied",
      message: "Cleanup needs an admin API key",
      field: null,
    });
    expect(
      await outcome(() => as(ops).mesh.cleanup({ pruneSessionsOlderThanSeconds: 1, dryRun: true })),
    ).toBe("ok");
    // Status is every tenant's to read.
    expect(await outcome(() => as(acme).mesh.getMeshStatus({}))).toBe("ok");
  });

  it("lets only an admin key define workflows, which every tenant then runs", async () => {
    const workflow: MessageInitShape<typeof WorkflowSchema> = {
      id: "door-chain",
      inputs: [{ name: "spec", type: "spec", required: true }],
      steps: [
        { id: "generate", kind: "generate", inputs: { spec: "input.spec" } },
        { id: "encode", kind: "encode", inputs: { image: "generate.images" } },
      ],
    };
    expect(await outcome(() => as(acme).processing.createWorkflow({ workflow }))).toEqual({
      code: "PermissionDenied",
      message: "CreateWorkflow needs an admin API key",
      field: null,
    });
    expect(await outcome(() => as(ops).processing.createWorkflow({ workflow }))).toBe("ok");
    expect(await outcome(() => as(acme).processing.updateWorkflow({ workflow }))).toMatchObject({
      code: "PermissionDenied",
    });
    expect(
      await outcome(() => as(globex).processing.deleteWorkflow({ workflowId: "door-chain" })),
    ).toMatchObject({
      code: "PermissionDenied",
    });
    const events = await collect(
      as(acme).processing.executeWorkflow({ workflowId: "door-chain", spec: tinySpec({ steps: 2 }) }),
    );
    expect(events.at(-1)?.session?.state).toBe(SessionState.COMPLETED);
    // With keys on, a callback needs its tenant's webhook secret (none is configured here); outside the
    // allow-list it is refused before that.
    expect(
      await outcome(() =>
        collect(
          as(acme).processing.executeWorkflow({
            workflowId: "door-chain",
            spec: tinySpec({ steps: 2 }),
            callbackUrl: "http://127.0.0.1:9/hooks",
          }),
        ),
      ),
    ).toEqual({
      code: "FailedPrecondition",
      message: 'callback_url: tenant "acme" has no webhook secret (WEBHOOK_TENANT_SECRETS)',
      field: "callback_url",
    });
    expect(
      await outcome(() =>
        collect(
          as(acme).processing.executeWorkflow({
            workflowId: "door-chain",
            spec: tinySpec({ steps: 2 }),
            callbackUrl: "http://10.0.0.1/hooks",
          }),
        ),
      ),
    ).toMatchObject({ code: "InvalidArgument", field: "callback_url" });
    expect(await outcome(() => as(ops).processing.deleteWorkflow({ workflowId: "door-chain" }))).toBe("ok");
  });

  it("answers /metrics on the public port to an admin key only (its tenant labels are everyone's)", async () => {
    const url = `http://${mesh.orchestrator.address}/metrics`;
    const scrape = (key?: string) =>
      fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {}).then(async (res) => ({
        status: res.status,
        body: await res.text(),
      }));
    expect((await scrape()).status).toBe(401);
    expect((await scrape(acme.key)).status).toBe(401);
    const admin = await scrape(ops.key);
    expect(admin.status).toBe(200);
    expect(admin.body).toMatch(/^# TYPE grpc_server_handled_total counter$/m);
  });

  it("follows the keys file: a new key works once written, and a broken file keeps the keys before it", async () => {
    const hooli = tenant("hooli");
    const hooliClient = connectOrchestrator(mesh.orchestrator.address, { apiKey: hooli.key });
    try {
      expect(await outcome(() => hooliClient.processing.listSessions({}))).toMatchObject({
        code: "Unauthenticated",
      });
      writeFileSync(keys, keysFile([acme, globex, initech, ops, hooli]));
      await eventually(
        async () =>
          (await outcome(() => hooliClient.processing.listSessions({}))) === "ok" ? true : undefined,
        15_000,
        "the new key to be accepted",
      );
      writeFileSync(keys, `${keysFile([acme])}globex not-a-digest\n`);
      await eventually(
        () => (mesh.orchestratorLog(50).includes("API keys file not loaded") ? true : undefined),
        15_000,
        "the broken file to be refused",
      );
      expect(await outcome(() => hooliClient.processing.listSessions({}))).toBe("ok");
      expect(await outcome(() => as(globex).processing.listSessions({}))).toBe("ok");
      expect(mesh.orchestratorLog(50)).not.toContain(hooli.key);
    } finally {
      writeFileSync(keys, keysFile([acme, globex, initech, ops]));
      hooliClient.close();
    }
  });
});

describe("tenants", () => {
  it("see only their own sessions and artifacts; another tenant's answer exactly as missing ones", async () => {
    // The same spec and seed: the same bytes, stored once, with a reference for each tenant.
    const mine = await generate(acme, 5);
    const theirs = await generate(globex, 5);
    expect(mine.state).toBe(SessionState.COMPLETED);
    expect([mine.tenant, theirs.tenant]).toEqual(["acme", "globex"]);
    const artifactId = mine.artifactIds[0] ?? "";
    expect(theirs.artifactIds).toEqual([artifactId]);

    const missingId = randomUUID();
    const same = async (call: (id: string) => Promise<unknown>) => {
      const foreign = await outcome(() => call(mine.id));
      const missing = await outcome(() => call(missingId));
      expect(foreign).not.toBe("ok");
      expect(JSON.stringify(foreign).replaceAll(mine.id, "ID")).toBe(
        JSON.stringify(missing).replaceAll(missingId, "ID"),
      );
      return foreign;
    };
    const g = as(globex);
    expect(await same((sessionId) => g.processing.getSession({ sessionId }))).toMatchObject({
      code: "NotFound",
    });
    await same((sessionId) => collect(g.processing.watchSession({ sessionId })));
    await same((sessionId) => g.processing.controlSession({ sessionId, action: SessionAction.RESTART }));
    await same((sessionId) => g.processing.deleteSession({ sessionId }));
    expect((await g.artifacts.listArtifacts({ sessionId: mine.id })).artifacts).toEqual([]);
    expect((await g.artifacts.listArtifacts({ sessionId: theirs.id })).artifacts.map((a) => a.id)).toEqual([
      artifactId,
    ]);

    const ids = async (t: TestTenant) =>
      (await as(t).processing.listSessions({ pageSize: 1000 })).sessions.map((s) => s.id);
    expect(await ids(acme)).toContain(mine.id);
    expect(await ids(acme)).not.toContain(theirs.id);
    expect(await ids(globex)).not.toContain(mine.id);

    // initech holds no reference to these bytes: its fetch answers as for bytes nobody has.
    const i = as(initech);
    const fetchForeign = await outcome(() => artifactBytes(i, artifactId));
    const fetchMissing = await outcome(() => artifactBytes(i, "0".repeat(64)));
    expect(JSON.stringify(fetchForeign).replace(artifactId, "ID")).toBe(
      JSON.stringify(fetchMissing).replace("0".repeat(64), "ID"),
    );
    expect(fetchForeign).toMatchObject({ code: "NotFound" });

    // globex deletes its session: acme's reference, and the bytes, stay.
    await g.processing.deleteSession({ sessionId: theirs.id });
    expect(await outcome(() => artifactBytes(g, artifactId))).toMatchObject({ code: "NotFound" });
    expect((await artifactBytes(as(acme), artifactId)).length).toBeGreaterThan(0);
    // A request id is the tenant's own: the same one from another tenant is a new session.
    const first = await generate(acme, 6, "shared-request");
    const second = await generate(globex, 6, "shared-request");
    expect(second.id).not.toBe(first.id);
    expect((await generate(acme, 6, "shared-request")).id).toBe(first.id);
  });

  it("see only their own batches", async () => {
    const { batch } = await as(acme).processing.createBatch({
      workflowId: "txt2img",
      items: [tinySpec({ seed: 1, steps: 2 }), tinySpec({ seed: 2, steps: 2 })],
    });
    const id = batch?.id ?? "";
    const missing = randomUUID();
    const g = as(globex);
    for (const call of [
      (batchId: string) => g.processing.getBatch({ batchId }),
      (batchId: string) => collect(g.processing.executeBatch({ batchId })),
      (batchId: string) => g.processing.controlBatch({ batchId, action: BatchAction.CANCEL }),
      (batchId: string) => g.processing.deleteBatch({ batchId }),
    ]) {
      const foreign = await outcome(() => call(id));
      expect(foreign).toMatchObject({ code: "NotFound", field: "batch_id" });
      expect(JSON.stringify(foreign).replace(id, "ID")).toBe(
        JSON.stringify(await outcome(() => call(missing))).replace(missing, "ID"),
      );
    }
    expect((await g.processing.listBatches({})).batches.map((b) => b.id)).not.toContain(id);
    expect((await g.processing.listSessions({ batchId: id })).sessions).toEqual([]);
    expect((await as(acme).processing.listBatches({})).batches.map((b) => b.id)).toContain(id);
    expect((await as(acme).processing.getBatch({ batchId: id })).batch?.tenant).toBe("acme");
    await as(acme).processing.deleteBatch({ batchId: id });
  });

  it("take their own safety policy to postprocess: initech's rejects, globex's passes and records it", async () => {
    const rejected = await generate(initech, 7);
    expect(rejected.state).toBe(SessionState.FAILED);
    expect(rejected.error).toContain("rejected by the safety policy");
    const passed = await generate(globex, 7);
    expect(passed.state).toBe(SessionState.COMPLETED);
    const png = await artifactBytes(as(globex), passed.artifactIds[0] ?? "");
    expect(pngInfo(png).text.parameters).toMatch(/Safety: passed /);
  });

  it("follow only their own sessions in the mesh event stream; an admin follows everyone's", async () => {
    const seen = (t: TestTenant, until: AbortSignal) => {
      const sessions: { id: string; tenant: string }[] = [];
      const done = (async () => {
        try {
          for await (const { event } of as(t).mesh.watchMeshEvents(
            { kinds: [MeshEventKind.SESSION] },
            { signal: until },
          )) {
            const d = event?.detail;
            if (d?.case === "session") sessions.push({ id: d.value.sessionId, tenant: d.value.tenant });
          }
        } catch {
          // the watch ends when the test aborts it
        }
      })();
      return { sessions, done };
    };
    const stop = new AbortController();
    const watchers = {
      acme: seen(acme, stop.signal),
      globex: seen(globex, stop.signal),
      ops: seen(ops, stop.signal),
    };
    await new Promise((r) => setTimeout(r, 300));
    const a = await generate(acme, 21);
    const g = await generate(globex, 22);
    await eventually(
      () =>
        ["acme", "globex"].every((t) => watchers.ops.sessions.some((s) => s.tenant === t)) ? true : undefined,
      10_000,
      "the admin to see both tenants' sessions",
    );
    stop.abort();
    await Promise.all(Object.values(watchers).map((w) => w.done));
    expect(new Set(watchers.acme.sessions.map((s) => `${s.tenant} ${s.id}`))).toEqual(
      new Set([`acme ${a.id}`]),
    );
    expect(new Set(watchers.globex.sessions.map((s) => `${s.tenant} ${s.id}`))).toEqual(
      new Set([`globex ${g.id}`]),
    );
    expect(watchers.ops.sessions.map((s) => s.id)).toEqual(expect.arrayContaining([a.id, g.id]));
  });

  it("leave one audit line per control action and deletion, naming tenant, action and object", async () => {
    const session = await generate(acme, 8);
    await as(acme).processing.controlSession({ sessionId: session.id, action: SessionAction.RESTART });
    await as(acme)
      .processing.controlSession({ sessionId: session.id, action: SessionAction.CANCEL })
      .catch(() => {});
    await eventually(
      async () => {
        const s = (await as(acme).processing.getSession({ sessionId: session.id })).session;
        return s && [SessionState.COMPLETED, SessionState.CANCELLED].includes(s.state) ? s : undefined;
      },
      30_000,
      "the restarted session to end",
    );
    await as(acme).processing.deleteSession({ sessionId: session.id });
    await eventually(
      () =>
        auditLines(mesh.orchestrator.logFile).some(
          (l) => l.action === "session.delete" && l.object === session.id,
        )
          ? true
          : undefined,
      5000,
      "the audit line",
    );
    const lines = auditLines(mesh.orchestrator.logFile).filter((l) => l.object === session.id);
    expect(lines.map((l) => `${l.tenant} ${l.action}`)).toEqual(
      expect.arrayContaining(["acme session.restart", "acme session.delete"]),
    );
    // Refused actions (another tenant's object) leave none.
    expect(
      auditLines(mesh.orchestrator.logFile).filter(
        (l) => l.tenant === "globex" && l.action !== "session.delete",
      ),
    ).toEqual([]);
  });
});

describe("CORS on the Connect/gRPC-Web port", () => {
  const url = () => `http://${mesh.orchestrator.address}/dmesh.processing.v1.ProcessingService/ListWorkflows`;
  const preflight = (origin: string) =>
    fetch(url(), {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,connect-protocol-version",
      },
    });

  it("answers a preflight from an allowed origin, with the headers Connect and gRPC-Web clients send", async () => {
    const res = await preflight(ALLOWED_ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(/, */);
    expect(allowed).toEqual(
      expect.arrayContaining(["authorization", "content-type", "connect-protocol-version", "x-grpc-web"]),
    );
  });

  it("refuses a preflight from another origin", async () => {
    const res = await preflight("https://evil.example.net");
    expect(res.status).toBe(403);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("exposes the headers clients read on an allowed origin's call, and says nothing to another's", async () => {
    const call = (origin: string) =>
      fetch(url(), {
        method: "POST",
        headers: { origin, "content-type": "application/json", authorization: `Bearer ${acme.key}` },
        body: "{}",
      });
    const allowed = await call(ALLOWED_ORIGIN);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect((allowed.headers.get("access-control-expose-headers") ?? "").toLowerCase()).toMatch(
      /grpc-status.*grpc-message/,
    );
    const other = await call("https://evil.example.net");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});
