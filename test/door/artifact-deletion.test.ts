import { existsSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { GenerationSpecSchema, OutputSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactBytes, collect, eventually, tinySpec } from "../faults/support/sessions.js";
import { connectOrchestrator, type OrchestratorClients, TestMesh } from "../faults/support/test-mesh.js";
import { auditLines, keysFile, outcome, scratchDir, type TestTenant, tenant } from "./support/door-mesh.js";

const acme = tenant("acme");
const globex = tenant("globex");
const ops = tenant("ops", true);
const MISSING = "0".repeat(64);

const scratch = scratchDir();
let mesh: TestMesh;
const clients = new Map<string, OrchestratorClients>();
const as = (t: TestTenant) => clients.get(t.name) as OrchestratorClients;

beforeAll(async () => {
  mesh = await TestMesh.start({
    orchestratorEnv: { API_KEYS_FILE: scratch.write("api-keys", keysFile([acme, globex, ops])) },
    apiKey: ops.key,
  });
  for (const t of [acme, globex])
    clients.set(t.name, connectOrchestrator(mesh.orchestrator.address, { apiKey: t.key }));
}, 120_000);
afterAll(async () => {
  for (const c of clients.values()) c.close();
  await mesh?.stop();
  scratch.remove();
});

/** A finished tiny txt2img session of `t`'s with `count` images. */
async function generate(t: TestTenant, seed: number, count = 1) {
  const events = await collect(
    as(t).processing.executeWorkflow(
      {
        workflowId: "txt2img",
        spec: {
          ...create(GenerationSpecSchema, tinySpec({ seed, steps: 2 })),
          output: create(OutputSpecSchema, { count }),
        },
      },
      { timeoutMs: 60_000 },
    ),
  );
  const session = events.at(-1)?.session;
  if (session?.state !== SessionState.COMPLETED) throw new Error(`no completed session: ${session?.error}`);
  return session;
}

const session = async (t: TestTenant, sessionId: string) =>
  (await as(t).processing.getSession({ sessionId })).session;
const listed = async (t: TestTenant, sessionId: string) =>
  (await as(t).artifacts.listArtifacts({ sessionId })).artifacts.map((a) => a.id);
const fileOf = (id: string) => join(mesh.dataDir, "artifacts", id.slice(0, 2), id);
/** The failure of a call with `id`, the id written as ID: two failures that tell nothing apart compare equal. */
const failure = async (id: string, call: (id: string) => Promise<unknown>) =>
  JSON.stringify(await outcome(() => call(id))).replaceAll(id, "ID");

describe("DeleteArtifact", () => {
  it("deletes the caller's reference: its sessions stop listing it, another tenant's same image stays with its bytes", async () => {
    // The same spec and seed: the same bytes, stored once, referenced by both tenants. (Image i takes seed
    // 31 + i: the other tests keep away from these seeds.)
    const mine = await generate(acme, 31, 2);
    const theirs = await generate(globex, 31, 2);
    const [gone, kept] = mine.artifactIds;
    if (!gone || !kept) throw new Error("expected two images");
    expect(theirs.artifactIds).toEqual([gone, kept]);
    const bytes = await artifactBytes(as(globex), gone);

    await as(acme).artifacts.deleteArtifact({ artifactId: gone });

    // Gone for acme, everywhere it was handed back, and answered as an id that never existed.
    expect(await failure(gone, (artifactId) => artifactBytes(as(acme), artifactId))).toBe(
      await failure(MISSING, (artifactId) => artifactBytes(as(acme), artifactId)),
    );
    expect(await outcome(() => artifactBytes(as(acme), gone))).toMatchObject({
      code: "NotFound",
      field: "artifact_id",
    });
    expect(await listed(acme, mine.id)).toEqual([kept]);
    const after = await session(acme, mine.id);
    expect(after?.artifactIds).toEqual([kept]);
    expect(after?.state).toBe(SessionState.COMPLETED);
    expect(after?.spec?.conditioning?.prompt).toBe(mine.spec?.conditioning?.prompt);
    expect((await artifactBytes(as(acme), kept)).length).toBeGreaterThan(0);
    // A second delete finds nothing.
    expect(await outcome(() => as(acme).artifacts.deleteArtifact({ artifactId: gone }))).toMatchObject({
      code: "NotFound",
      field: "artifact_id",
    });

    // globex's reference, session and bytes are untouched.
    expect(await artifactBytes(as(globex), gone)).toEqual(bytes);
    expect((await session(globex, theirs.id))?.artifactIds).toEqual([gone, kept]);
    expect(await listed(globex, theirs.id)).toEqual([gone, kept]);
    expect(existsSync(fileOf(gone))).toBe(true);

    // The last reference goes: so does the file.
    await as(globex).artifacts.deleteArtifact({ artifactId: gone });
    expect(existsSync(fileOf(gone))).toBe(false);
    expect((await session(globex, theirs.id))?.artifactIds).toEqual([kept]);
    expect(existsSync(fileOf(kept))).toBe(true);
  });

  it("answers another tenant's artifact exactly as a missing one, and deletes nothing", async () => {
    const mine = await generate(acme, 1032);
    const id = mine.artifactIds[0] ?? "";
    const deleteAs = (t: TestTenant) => (artifactId: string) =>
      as(t).artifacts.deleteArtifact({ artifactId });
    const foreign = await failure(id, deleteAs(globex));
    expect(foreign).toBe(await failure(MISSING, deleteAs(globex)));
    expect(JSON.parse(foreign)).toMatchObject({ code: "NotFound", field: "artifact_id" });
    expect((await artifactBytes(as(acme), id)).length).toBeGreaterThan(0);
    expect((await session(acme, mine.id))?.artifactIds).toEqual([id]);
  });

  it("refuses a malformed id with INVALID_ARGUMENT naming artifact_id, quoting a bounded part of it", async () => {
    for (const artifactId of ["", "not-a-digest", "A".repeat(64), "a".repeat(65), "f".repeat(100_000)]) {
      const refused = await outcome(() => as(acme).artifacts.deleteArtifact({ artifactId }));
      expect(refused).toMatchObject({ code: "InvalidArgument", field: "artifact_id" });
      expect(refused !== "ok" && refused.message.length).toBeLessThan(200);
    }
    const long = await outcome(() => as(acme).artifacts.deleteArtifact({ artifactId: "f".repeat(100_000) }));
    expect(long !== "ok" && long.message).toContain("(100000 characters)");
  });

  it("leaves one audit line per deletion, naming tenant, action and artifact; a refused one leaves none", async () => {
    const mine = await generate(acme, 2033);
    const id = mine.artifactIds[0] ?? "";
    await as(globex)
      .artifacts.deleteArtifact({ artifactId: id })
      .catch(() => {});
    await as(acme).artifacts.deleteArtifact({ artifactId: id });
    const lines = await eventually(
      () => {
        const found = auditLines(mesh.orchestrator.logFile).filter((l) => l.object === id);
        return found.length > 0 ? found : undefined;
      },
      5000,
      "the audit line",
    );
    expect(lines).toEqual([{ tenant: "acme", action: "artifact.delete", object: id }]);
  });
});
