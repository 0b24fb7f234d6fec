/**
 * One echo server per process, for the transport suite: `dmesh <log level>` (our grpc-js adapter with the
 * services' interceptors, health and reflection), `grpc-js` (a bare @grpc/grpc-js server), `connect-node`
 * (stock connect-node over h2c) or `pipe` (JSON lines on stdin/stdout). Listening servers report their
 * port over IPC.
 */
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  ConditioningService,
  TokenizeRequestSchema,
  type TokenizeResponse,
  TokenizeResponseSchema,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import {
  type GenerateRequest,
  GenerateRequestSchema,
  type GenerateResponse,
  GenerateResponseSchema,
  InferenceService,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { createLogger, startGrpcService } from "@dmesh/runtime";
import * as grpc from "@grpc/grpc-js";
import {
  GENERATE_PATH,
  progressEvent,
  progressEventJson,
  STREAM_LENGTH,
  TOKENIZE_PATH,
  tokenizeResponse,
  tokenizeResponseJson,
} from "./echo-messages.js";
import { protobufCodec } from "./protobuf-codec.js";

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// Connect-style implementations, served by both our adapter and connect-node.
const conditioning = { tokenize: () => tokenizeResponse };
const inference = {
  async *generate() {
    for (let step = 1; step <= STREAM_LENGTH; step++) yield progressEvent(step);
  },
};

async function serveDmesh(level: string): Promise<number> {
  const service = await startGrpcService({
    name: "bench-echo",
    host: "127.0.0.1",
    port: 0,
    logger: createLogger("bench-echo", level),
    maxMessageBytes: MAX_MESSAGE_BYTES,
    shutdownGraceMs: 1000,
    registrations: [
      { service: ConditioningService, impl: conditioning },
      { service: InferenceService, impl: inference },
    ],
  });
  return service.port;
}

async function serveGrpcJs(): Promise<number> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
  });
  const tokenizeOut = protobufCodec(TokenizeResponseSchema);
  const generateOut = protobufCodec(GenerateResponseSchema);
  server.register(
    TOKENIZE_PATH,
    (_call: unknown, callback: grpc.sendUnaryData<TokenizeResponse>) => callback(null, tokenizeResponse),
    tokenizeOut.serialize,
    protobufCodec(TokenizeRequestSchema).deserialize,
    "unary",
  );
  server.register(
    GENERATE_PATH,
    async (call: grpc.ServerWritableStream<GenerateRequest, GenerateResponse>) => {
      for (let step = 1; step <= STREAM_LENGTH; step++) {
        if (!call.write(progressEvent(step))) await once(call, "drain");
      }
      call.end();
    },
    generateOut.serialize,
    protobufCodec(GenerateRequestSchema).deserialize,
    "serverStream",
  );
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

async function serveConnectNode(): Promise<number> {
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(ConditioningService, conditioning);
      router.service(InferenceService, inference);
    },
    acceptCompression: [],
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
  });
  const server = http2.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

/** The old system's transport: one JSON object per line each way, requests told apart by id. */
function servePipe(): void {
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on("line", (line) => {
    const { id, method } = JSON.parse(line) as { id: number; method: string; params: unknown };
    if (method === "tokenize") {
      process.stdout.write(`${JSON.stringify({ id, result: tokenizeResponseJson })}\n`);
      return;
    }
    for (let step = 1; step <= STREAM_LENGTH; step++) {
      process.stdout.write(`${JSON.stringify({ id, event: progressEventJson(step) })}\n`);
    }
    process.stdout.write(`${JSON.stringify({ id, end: true })}\n`);
  });
  lines.once("close", () => process.exit(0));
}

const [kind, level = "info"] = process.argv.slice(2);
if (kind === "pipe") {
  servePipe();
} else {
  const serve = { dmesh: () => serveDmesh(level), "grpc-js": serveGrpcJs, "connect-node": serveConnectNode }[
    kind ?? ""
  ];
  if (!serve) throw new Error(`unknown server kind "${kind}"`);
  // Never outlive the bench that started us.
  process.once("disconnect", () => process.exit(0));
  process.send?.({ port: await serve() });
}
