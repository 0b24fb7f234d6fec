/**
 * The client side of one contender of the observability suite, in a process of its own (tracing is per
 * process: its context manager touches every promise, so the bare and metrics contenders must not share a
 * process with a traced one). `bare` calls through a transport without metrics, `metrics` with grpc_client_*,
 * `traced` with metrics and a span per call exported to the collector. On each IPC request it keeps
 * `inFlight` calls going for `settleMs` untimed, then `windowMs` counted, and answers with the calls it
 * made and the CPU time it used.
 */
import { createClient } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { createGrpcTransport, startTracing } from "@dmesh/runtime";
import { tokenizeRequest } from "../transport/echo-messages.js";

export interface WindowRequest {
  windowMs: number;
  settleMs: number;
  inFlight: number;
}

export interface WindowResult {
  calls: number;
  seconds: number;
  cpuMicros: number;
}

const [mode, address = "", collector = ""] = process.argv.slice(2);
if (mode === "traced") await startTracing({ service: "bench-driver", otlpEndpoint: collector });
const transport = createGrpcTransport({ address, observe: mode !== "bare" });
const client = createClient(ConditioningService, transport);

/** Calls finished from `settleMs` on, with the load kept up across that mark, as measure.ts's throughput. */
async function window(req: WindowRequest): Promise<WindowResult> {
  const end = performance.now() + req.settleMs + req.windowMs;
  let calls = 0;
  let from = performance.now();
  let cpuBefore = cpuNow();
  const mark = setTimeout(() => {
    calls = 0;
    from = performance.now();
    cpuBefore = cpuNow();
  }, req.settleMs);
  const worker = async () => {
    while (performance.now() < end) {
      await client.tokenize(tokenizeRequest);
      calls++;
    }
  };
  await Promise.all(Array.from({ length: req.inFlight }, worker));
  clearTimeout(mark);
  return { calls, seconds: (performance.now() - from) / 1000, cpuMicros: cpuNow() - cpuBefore };
}

function cpuNow(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

process.on("message", (req: WindowRequest) => {
  void window(req).then((result) => process.send?.(result));
});
process.once("disconnect", () => {
  transport.close();
  process.exit(0);
});
process.send?.({ ready: true });
