import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport as createConnectGrpcTransport } from "@connectrpc/connect-node";
import {
  ConditioningService,
  TokenizeRequestSchema,
  TokenizeResponseSchema,
} from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import {
  GenerateRequestSchema,
  GenerateResponseSchema,
  InferenceService,
} from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { createGrpcTransport, REQUEST_ID_HEADER } from "@dmesh/runtime";
import * as grpc from "@grpc/grpc-js";
import { stopChild } from "../child-service.js";
import {
  GENERATE_PATH,
  generateRequest,
  TOKENIZE_PATH,
  tokenizeRequest,
  tokenizeRequestJson,
} from "./echo-messages.js";
import { protobufCodec } from "./protobuf-codec.js";

/** A client of one echo server; every transport answers the same two calls. */
export interface EchoClient {
  /** The server's process, whose CPU time counts with the client's. */
  readonly serverPid: number;
  tokenize(): Promise<unknown>;
  /** Reads one whole server stream; resolves to the number of messages received. */
  stream(): Promise<number>;
  close(): Promise<void>;
}

async function count(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}

/**
 * Our hop as a service makes it: a Connect client over our grpc-js transport, carrying the request id
 * and a deadline the way `callOptions(scope)` does.
 */
export function createDmeshEchoClient(address: string, serverPid: number): EchoClient {
  const transport = createGrpcTransport({ address });
  const conditioning = createClient(ConditioningService, transport);
  const inference = createClient(InferenceService, transport);
  const options = () => ({ headers: { [REQUEST_ID_HEADER]: "bench-request-0001" }, timeoutMs: 30_000 });
  return {
    serverPid,
    tokenize: () => conditioning.tokenize(tokenizeRequest, options()),
    stream: () => count(inference.generate(generateRequest, options())),
    close: async () => transport.close(),
  };
}

/**
 * A bare @grpc/grpc-js client with protobuf-es serializers: no interceptors, and no metadata or deadline
 * unless `carrying`, where each call carries the request id and deadline our hop carries, so that their
 * own cost can be told from our layers'.
 */
export function createGrpcJsEchoClient(address: string, serverPid: number, carrying = false): EchoClient {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = () => {
    const md = new grpc.Metadata();
    if (carrying) md.set(REQUEST_ID_HEADER, "bench-request-0001");
    return md;
  };
  const options = (): grpc.CallOptions => (carrying ? { deadline: Date.now() + 30_000 } : {});
  const request = protobufCodec(TokenizeRequestSchema);
  const response = protobufCodec(TokenizeResponseSchema);
  const streamRequest = protobufCodec(GenerateRequestSchema);
  const streamResponse = protobufCodec(GenerateResponseSchema);
  return {
    serverPid,
    tokenize: () =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          TOKENIZE_PATH,
          request.serialize,
          response.deserialize,
          tokenizeRequest,
          metadata(),
          options(),
          (err: grpc.ServiceError | null, res?: unknown) => (err ? reject(err) : resolve(res)),
        );
      }),
    stream: () =>
      count(
        client.makeServerStreamRequest(
          GENERATE_PATH,
          streamRequest.serialize,
          streamResponse.deserialize,
          generateRequest,
          metadata(),
          options(),
        ) as AsyncIterable<unknown>,
      ),
    close: async () => client.close(),
  };
}

/** Stock connect-node: its gRPC transport over HTTP/2, compression off as ours is. */
export function createConnectNodeEchoClient(address: string, serverPid: number): EchoClient {
  const transport = createConnectGrpcTransport({ baseUrl: `http://${address}`, acceptCompression: [] });
  const conditioning = createClient(ConditioningService, transport);
  const inference = createClient(InferenceService, transport);
  return {
    serverPid,
    tokenize: () => conditioning.tokenize(tokenizeRequest),
    stream: () => count(inference.generate(generateRequest)),
    close: async () => {},
  };
}

/** The old system's transport: JSON lines to a child's stdin, answers read from its stdout by id. */
export function createPipeEchoClient(serverEntry: string): EchoClient {
  const child = spawn(process.execPath, [serverEntry, "pipe"], { stdio: ["pipe", "pipe", "inherit"] });
  const pending = new Map<number, { resolve: (value: unknown) => void; events?: number }>();
  let nextId = 0;
  createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
    const msg = JSON.parse(line) as { id: number; result?: unknown; event?: unknown; end?: true };
    const waiter = pending.get(msg.id);
    if (!waiter) return;
    if (msg.event !== undefined) {
      waiter.events = (waiter.events ?? 0) + 1;
      return;
    }
    pending.delete(msg.id);
    waiter.resolve(msg.end ? (waiter.events ?? 0) : msg.result);
  });
  const call = (method: string, params: unknown) =>
    new Promise<unknown>((resolve) => {
      const id = nextId++;
      pending.set(id, { resolve });
      child.stdin.write(`${JSON.stringify({ id, method, params })}\n`);
    });
  return {
    serverPid: child.pid ?? Number.NaN,
    tokenize: () => call("tokenize", tokenizeRequestJson),
    stream: async () => (await call("generate", { generationId: generateRequest.generationId })) as number,
    close: async () => {
      child.stdin.end();
      await stopChild(child);
    },
  };
}
