import { createServer, type IncomingMessage, type Server } from "node:http";
import { fromJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BatchSchema, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { SessionSchema, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifySignature } from "../../services/orchestrator/src/webhooks/webhook-signature.js";
import { unusedPort } from "../faults/support/service-process.js";
import { collect, eventually, tinySpec } from "../faults/support/sessions.js";
import { TestMesh } from "../faults/support/test-mesh.js";

// Webhooks from a real orchestrator process to a receiver on loopback: signed with the mesh's secret (API keys
// are off here), retried with backoff, and stored so that a restart loses none.
const SECRET = "a-mesh-secret-of-32-characters!!";

interface Received {
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/** An HTTP receiver on 127.0.0.1: records every POST, answering `status()` (200 unless told otherwise). */
class Receiver {
  readonly posts: Received[] = [];
  status = () => 200;
  private server: Server | undefined;

  async listen(port: number): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.posts.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(this.status()).end();
      });
    });
    const server = this.server;
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server) await new Promise((r) => server.close(r));
  }
}

let mesh: TestMesh;
let receiver: Receiver;
let port: number;
const url = (path: string) => `http://127.0.0.1:${port}/hooks/${path}`;

beforeAll(async () => {
  port = await unusedPort();
  receiver = new Receiver();
  await receiver.listen(port);
  mesh = await TestMesh.start({
    orchestratorEnv: {
      WEBHOOK_ALLOWED_URLS: `http://127.0.0.1:${port}/hooks/`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RETRY_MS: "100",
    },
  });
}, 120_000);
afterAll(async () => {
  await mesh?.stop();
  await receiver?.close();
});

async function runWith(callbackUrl: string, seed: number) {
  const events = await collect(
    mesh.clients.processing.executeWorkflow({
      workflowId: "txt2img",
      spec: tinySpec({ seed, steps: 2 }),
      callbackUrl,
    }),
  );
  return events.at(-1)?.session;
}

describe("webhooks", () => {
  it("POST a finished session's final state as the proto's JSON, signed with HMAC-SHA256", async () => {
    const session = await runWith(url("one"), 31);
    expect(session?.state).toBe(SessionState.COMPLETED);
    const post = await eventually(
      () => receiver.posts.find((p) => p.body.includes(session?.id ?? "?")),
      10_000,
      "the delivery",
    );
    expect(post.headers["x-dmesh-event"]).toBe("session");
    expect(post.headers["x-dmesh-delivery"]).toBe(`session:${session?.id}:${session?.sequence}`);
    expect(verifySignature(SECRET, post.body, String(post.headers["x-dmesh-signature"]))).toBe(true);
    expect(
      verifySignature("another-secret-of-some-length", post.body, String(post.headers["x-dmesh-signature"])),
    ).toBe(false);
    const told = fromJsonString(SessionSchema, post.body);
    expect([told.id, told.state, told.artifactIds, told.callbackUrl]).toEqual([
      session?.id,
      SessionState.COMPLETED,
      session?.artifactIds,
      url("one"),
    ]);
  });

  it("retry a failed POST with backoff, under the same delivery id, until the receiver takes it", async () => {
    let refusals = 2;
    receiver.status = () => (refusals-- > 0 ? 503 : 200);
    const session = await runWith(url("retried"), 32);
    const posts = await eventually(
      () => {
        const mine = receiver.posts.filter((p) => p.body.includes(session?.id ?? "?"));
        return mine.length >= 3 ? mine : undefined;
      },
      15_000,
      "three attempts",
    );
    receiver.status = () => 200;
    expect(new Set(posts.map((p) => p.headers["x-dmesh-delivery"])).size).toBe(1);
  });

  it("refuse a callback outside WEBHOOK_ALLOWED_URLS, naming the field", async () => {
    for (const bad of [
      `http://127.0.0.1:${port}/elsewhere`,
      "http://169.254.169.254/latest/meta-data/",
      "file:///etc/passwd",
    ]) {
      const err = await collect(
        mesh.clients.processing.executeWorkflow({
          workflowId: "txt2img",
          spec: tinySpec(),
          callbackUrl: bad,
        }),
      ).catch((e) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toMatch(/^callback_url: /);
    }
  });

  it("POST a batch's final state when it ends", async () => {
    const { batch } = await mesh.clients.processing.createBatch({
      workflowId: "txt2img",
      base: tinySpec({ steps: 2 }),
      axes: [{ field: "params.seed", valuesJson: ["1", "2"] }],
      callbackUrl: url("batch"),
    });
    await collect(mesh.clients.processing.executeBatch({ batchId: batch?.id ?? "" }));
    const post = await eventually(
      () => receiver.posts.find((p) => p.headers["x-dmesh-event"] === "batch"),
      10_000,
      "the batch delivery",
    );
    const told = fromJsonString(BatchSchema, post.body);
    expect([told.id, told.state, told.completed]).toEqual([batch?.id, BatchState.COMPLETED, 2]);
  });

  it("are delivered after an orchestrator restart: a pending delivery is stored, not lost", async () => {
    // The receiver is down when the session ends, and the next retry is a minute away.
    await receiver.close();
    await mesh.orchestrator.kill("SIGKILL");
    await mesh.startOrchestrator({ WEBHOOK_RETRY_MS: "60000" });
    const session = await runWith(url("after-restart"), 33);
    expect(session?.state).toBe(SessionState.COMPLETED);
    await eventually(
      () => (mesh.orchestratorLog(200).includes("webhook failed; retrying") ? true : undefined),
      10_000,
      "the first attempt to fail",
    );
    await mesh.orchestrator.kill("SIGKILL");

    receiver = new Receiver();
    await receiver.listen(port);
    await mesh.startOrchestrator({ WEBHOOK_RETRY_MS: "60000" });
    const post = await eventually(
      () => receiver.posts.find((p) => p.body.includes(session?.id ?? "?")),
      15_000,
      "the delivery after the restart",
    );
    expect(verifySignature(SECRET, post.body, String(post.headers["x-dmesh-signature"]))).toBe(true);
    expect(fromJsonString(SessionSchema, post.body).state).toBe(SessionState.COMPLETED);
  });
});
