import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { ArtifactService } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { MeshService } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { ProcessingService } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { ServerReflection } from "@dmesh/contracts/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "@dmesh/contracts/grpc/reflection/v1alpha/reflection_pb.js";
import { createGrpcTransport } from "@dmesh/runtime";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestMesh } from "../faults/support/test-mesh.js";
import { keysFile, scratchDir, tenant } from "./support/door-mesh.js";
import { type Extreme, extremeMessage, garbage } from "./support/fuzz-messages.js";

const SERVICES: DescService[] = [
  ProcessingService,
  MeshService,
  ArtifactService,
  // Forwarded to an inference replica: its answers to bad input come back through the door.
  ModelService,
  ConditioningService,
  Health,
  ServerReflection,
  ServerReflectionAlpha,
];
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
// Longer than any answer to a bad request should take: reaching it counts as a hang.
const HANG_MS = 15_000;
const ops = tenant("ops", true);
const scratch = scratchDir();
let mesh: TestMesh;
let client: grpc.Client;

beforeAll(async () => {
  mesh = await TestMesh.start({
    orchestratorEnv: {
      API_KEYS_FILE: scratch.write("api-keys", keysFile([ops])),
      MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
    },
    apiKey: ops.key,
  });
  client = new grpc.Client(mesh.orchestrator.address, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
  });
}, 120_000);
afterAll(async () => {
  client?.close();
  await mesh?.stop();
  scratch.remove();
});

/**
 * Sends raw bytes as `method`'s request (with the admin key) and reports the status code, or "answered" when
 * a stream sent a message (it is then cancelled), or "hang" when nothing came back in time.
 */
function send(method: DescMethod, bytes: Uint8Array): Promise<number | "answered" | "hang"> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${ops.key}`);
  const options = { deadline: Date.now() + HANG_MS };
  const identity = (b: Buffer) => b;
  const body = Buffer.from(bytes);
  return new Promise((resolve) => {
    const done = (code: number | "answered" | "hang") =>
      resolve(code === grpc.status.DEADLINE_EXCEEDED ? "hang" : code);
    if (method.methodKind === "unary") {
      client.makeUnaryRequest(path, identity, identity, body, metadata, options, (err) =>
        done(err?.code ?? 0),
      );
      return;
    }
    const call =
      method.methodKind === "server_streaming"
        ? client.makeServerStreamRequest(path, identity, identity, body, metadata, options)
        : client.makeBidiStreamRequest(path, identity, identity, metadata, options);
    let answered = false;
    call.on("data", () => {
      answered = true;
      call.cancel();
    });
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => done(answered ? "answered" : status.code));
    if (method.methodKind !== "server_streaming") {
      const duplex = call as grpc.ClientDuplexStream<Buffer, Buffer>;
      duplex.write(body);
      duplex.end();
    }
  });
}

const methods = SERVICES.flatMap((s) => s.methods);
const WELL_FORMED: { name: string; bytes: (m: DescMethod) => Uint8Array }[] = [
  { name: "empty", bytes: () => new Uint8Array(0) },
  ...(["max", "min", "long"] as Extreme[]).map((extreme) => ({
    name: `every field ${extreme}`,
    bytes: (m: DescMethod) => extremeMessage(m.input, extreme),
  })),
];
const MALFORMED: { name: string; bytes: (m: DescMethod, i: number) => Uint8Array }[] = [
  { name: "garbage", bytes: (_m, i) => garbage(512, i + 1) },
  {
    name: "truncated",
    bytes: (m) => {
      const whole = extremeMessage(m.input, "max");
      return whole.subarray(0, Math.floor(whole.length / 2));
    },
  },
  { name: "over MAX_MESSAGE_BYTES", bytes: (_m, i) => garbage(MAX_MESSAGE_BYTES + 1024, i + 7) },
];

describe(`bad input to every method of the orchestrator (${methods.length} methods)`, () => {
  it("answers well-formed messages (empty, every field at its limits, very long strings) without INTERNAL, UNKNOWN or a hang", async () => {
    const bad: string[] = [];
    for (const method of methods) {
      for (const variant of WELL_FORMED) {
        const code = await send(method, variant.bytes(method));
        if (code === "hang" || code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN)
          bad.push(
            `${method.parent.name}.${method.name} ${variant.name}: ${code === "hang" ? code : grpc.status[code]}`,
          );
      }
    }
    expect(bad).toEqual([]);
  });

  it("answers garbage, truncated and oversized messages without a hang, and stays SERVING", async () => {
    const hangs: string[] = [];
    for (const [i, method] of methods.entries()) {
      for (const variant of MALFORMED) {
        if ((await send(method, variant.bytes(method, i))) === "hang")
          hangs.push(`${method.name} ${variant.name}`);
      }
    }
    expect(hangs).toEqual([]);
    expect(mesh.orchestrator.isRunning()).toBe(true);
    const transport = createGrpcTransport({ address: mesh.orchestrator.address });
    try {
      expect((await createClient(Health, transport).check({ service: "" })).status).toBe(Serving.SERVING);
    } finally {
      transport.close();
    }
    expect((await mesh.clients.processing.listWorkflows({})).workflows.length).toBeGreaterThan(0);
  });
});
