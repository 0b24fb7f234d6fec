import { Worker } from "node:worker_threads";
import type { TensorFeed, TensorResult } from "./ort-session.js";
import { SessionLoadError } from "./ort-session.js";
import { ortRunGate } from "./run-gate.js";
import type {
  ErrorMessage,
  FeedMessage,
  OpenReply,
  OpenRequest,
  ThreadReply,
  ThreadRequest,
} from "./session-messages.js";

// Always the compiled worker, from the sources (which vitest runs) as from dist: both sit one folder below the
// package root, and Node runs no TypeScript in a worker.
const WORKER_URL = new URL("../dist/session-worker.js", import.meta.url);

type Opened = Extract<OpenReply, { kind: "opened" }>;
type Reply = ThreadReply | OpenReply;

/**
 * One onnxruntime session on a worker thread of its own. Runs go one at a time (per session, and through the
 * process's run gate); feeds are copied once into buffers that move to the thread and back, outputs move
 * back without copies. The thread holds the event loop open only while it works.
 */
export class SessionThread {
  private chain: Promise<unknown> = Promise.resolve();
  /** Each input's buffer while it is here (it is away during a run). */
  private readonly buffers = new Map<string, ArrayBuffer>();
  private waiter: { resolve(reply: Reply): void; reject(err: Error): void } | undefined;
  /** Why the thread is gone, once it is. */
  private gone: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly label: string,
  ) {
    worker.on("message", (reply: Reply) => {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.resolve(reply);
    });
    worker.on("error", (err) => this.lost(err));
    worker.on("exit", (code) =>
      this.lost(new Error(`the onnxruntime thread of ${label} exited (code ${code})`)),
    );
  }

  /** Starts the thread and creates the session there; a model it cannot load is a SessionLoadError. */
  static async open(
    label: string,
    request: OpenRequest,
    transfer: boolean,
  ): Promise<[SessionThread, Opened]> {
    let { source } = request;
    const transferList: ArrayBuffer[] = [];
    if (typeof source !== "string") {
      // Bytes cross as a buffer of their own: the caller's moves when it may, else a copy of just the view.
      const own =
        transfer &&
        source.buffer instanceof ArrayBuffer &&
        source.byteOffset === 0 &&
        source.byteLength === source.buffer.byteLength;
      if (!own) source = source.slice();
      transferList.push(source.buffer as ArrayBuffer);
    }
    const worker = new Worker(WORKER_URL, {
      workerData: { ...request, source },
      transferList,
      // onnxruntime runs on this thread's stack, as it ran on the main thread's (8 MiB, not a worker's 4).
      resourceLimits: { stackSizeMb: 8 },
    });
    const thread = new SessionThread(worker, label);
    const reply = (await thread.next()) as OpenReply;
    thread.worker.unref();
    if (reply.kind === "unloadable") {
      await worker.terminate();
      throw new SessionLoadError(reply.detail);
    }
    return [thread, reply];
  }

  /**
   * Runs the session on its thread; resolves with float32 outputs and the seconds the run call took: from
   * handing the feeds over to having the outputs back (the hop both ways included, as a run on the event
   * loop included its setImmediate; the wait for the gate not).
   */
  run(
    feeds: Readonly<Record<string, TensorFeed>>,
    outputs: readonly string[] | undefined,
  ): Promise<{ results: Record<string, TensorResult>; seconds: number }> {
    const task = this.chain.then(() => ortRunGate.run(() => this.runNow(feeds, outputs)));
    this.chain = task.catch(() => undefined);
    return task;
  }

  /** Releases the session, then ends the thread (after the runs already asked for). */
  release(): Promise<void> {
    const task = this.chain.then(async () => {
      if (!this.gone) await this.ask({ kind: "release" }, []);
      await this.worker.terminate();
    });
    this.chain = task.catch(() => undefined);
    return task;
  }

  private async runNow(
    feeds: Readonly<Record<string, TensorFeed>>,
    outputs: readonly string[] | undefined,
  ): Promise<{ results: Record<string, TensorResult>; seconds: number }> {
    const messages: Record<string, FeedMessage> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      const bytes = feed.data.byteLength;
      let buffer = this.buffers.get(name);
      if (!buffer || buffer.byteLength < bytes) buffer = new ArrayBuffer(bytes);
      this.buffers.delete(name);
      const array =
        feed.data instanceof Float32Array ? "float32" : feed.data instanceof Int32Array ? "int32" : "int64";
      if (feed.data instanceof Float32Array) new Float32Array(buffer, 0, feed.data.length).set(feed.data);
      else if (feed.data instanceof Int32Array) new Int32Array(buffer, 0, feed.data.length).set(feed.data);
      else new BigInt64Array(buffer, 0, feed.data.length).set(feed.data);
      messages[name] = { array, buffer, length: feed.data.length, dims: feed.dims };
    }
    const started = performance.now();
    const reply = await this.ask(
      { kind: "run", feeds: messages, outputs },
      Object.values(messages).map((m) => m.buffer),
    );
    const seconds = (performance.now() - started) / 1000;
    if (reply.kind === "released")
      throw new Error(`the onnxruntime thread of ${this.label} answered out of turn`);
    for (const [name, buffer] of Object.entries(reply.buffers)) this.buffers.set(name, buffer);
    if (reply.kind === "failed") throw errorFrom(reply.error);
    return { results: reply.results, seconds };
  }

  /** Posts one request and waits for its reply; the thread holds the event loop open meanwhile. */
  private async ask(request: ThreadRequest, transfer: ArrayBuffer[]): Promise<ThreadReply> {
    if (this.gone) throw this.gone;
    const reply = this.next();
    this.worker.ref();
    try {
      this.worker.postMessage(request, transfer);
      return (await reply) as ThreadReply;
    } finally {
      this.worker.unref();
    }
  }

  private next(): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private lost(err: Error): void {
    this.gone ??= err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.gone);
  }
}

/** The error as the thread threw it: the same class where it is a standard one, and the same message. */
function errorFrom(error: ErrorMessage): Error {
  const Class = error.name === "TypeError" ? TypeError : error.name === "RangeError" ? RangeError : Error;
  const err = new Class(error.message);
  if (err.name !== error.name) err.name = error.name;
  return err;
}
