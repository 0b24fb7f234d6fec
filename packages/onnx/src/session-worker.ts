// A session's worker thread: it owns one onnxruntime session and runs it, so that the synchronous native
// `run` (onnxruntime-node calls it inside setImmediate) blocks this thread and not the service's event loop.
import { parentPort, workerData } from "node:worker_threads";
import type * as ort from "onnxruntime-node";
import { createOrtSession, runOrtSession, SessionLoadError, toTensor } from "./ort-session.js";
import type { FeedMessage, OpenReply, OpenRequest, ThreadReply, ThreadRequest } from "./session-messages.js";

const port = parentPort;
if (!port) throw new Error("session-worker.js runs as a worker thread");

const request = workerData as OpenRequest;
let session: ort.InferenceSession | undefined;
const types = new Map<string, string>();

try {
  const created = await createOrtSession(
    request.name,
    request.source,
    request.settings,
    request.externalDataDir,
  );
  session = created.session;
  for (const input of created.inputs) types.set(input.name, input.type);
  const { inputs, outputs, providers, fallbacks } = created;
  port.postMessage({ kind: "opened", inputs, outputs, providers, fallbacks } satisfies OpenReply);
} catch (err) {
  const detail = err instanceof SessionLoadError ? err.detail : String(err);
  port.postMessage({ kind: "unloadable", detail } satisfies OpenReply);
}

port.on("message", async (message: ThreadRequest) => {
  if (message.kind === "release") {
    await session?.release();
    session = undefined;
    port.postMessage({ kind: "released" } satisfies ThreadReply);
    return;
  }
  const buffers = Object.fromEntries(Object.entries(message.feeds).map(([name, f]) => [name, f.buffer]));
  try {
    if (!session) throw new Error("the session was released");
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, feed] of Object.entries(message.feeds))
      tensors[name] = toTensor(view(feed), feed.dims, types.get(name) ?? "float32");
    const { results } = await runOrtSession(session, tensors, message.outputs);
    const transfer: ArrayBuffer[] = [...Object.values(buffers)];
    for (const [name, result] of Object.entries(results)) {
      // Only a buffer of its own moves; a view into a larger one is copied first.
      const own =
        result.data.byteOffset === 0 && result.data.byteLength === result.data.buffer.byteLength
          ? result.data
          : result.data.slice();
      results[name] = { data: own, dims: result.dims };
      transfer.push(own.buffer as ArrayBuffer);
    }
    port.postMessage({ kind: "ran", results, buffers } satisfies ThreadReply, transfer);
  } catch (err) {
    const error =
      err instanceof Error
        ? { name: err.name, message: err.message }
        : { name: "Error", message: String(err) };
    port.postMessage({ kind: "failed", error, buffers } satisfies ThreadReply, Object.values(buffers));
  }
});

function view(feed: FeedMessage): Float32Array | Int32Array | BigInt64Array {
  switch (feed.array) {
    case "int32":
      return new Int32Array(feed.buffer, 0, feed.length);
    case "int64":
      return new BigInt64Array(feed.buffer, 0, feed.length);
    default:
      return new Float32Array(feed.buffer, 0, feed.length);
  }
}
