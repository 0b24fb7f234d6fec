import { parseArgs } from "node:util";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { type MeshEvent, MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { DEFAULT_URL, orchestratorClients } from "../clients.js";

export const EVENTS_HELP = `dmesh events [--kinds replica,model,memory,session,batch] [--count N] [--for SECONDS] [--url ${DEFAULT_URL}]
  Follows the mesh's events: replicas going down and coming back, models loaded and unloaded, device memory
  running low, sessions and batches changing state. Opens with every replica's state; runs until Ctrl-C, N
  events, or SECONDS.`;

/** The names --kinds takes, and the kinds each stands for. */
const KIND_NAMES: Record<string, MeshEventKind[]> = {
  replica: [MeshEventKind.REPLICA_UP, MeshEventKind.REPLICA_DOWN],
  "replica-up": [MeshEventKind.REPLICA_UP],
  "replica-down": [MeshEventKind.REPLICA_DOWN],
  model: [MeshEventKind.MODEL_LOADED, MeshEventKind.MODEL_UNLOADED],
  "model-loaded": [MeshEventKind.MODEL_LOADED],
  "model-unloaded": [MeshEventKind.MODEL_UNLOADED],
  memory: [MeshEventKind.DEVICE_MEMORY_LOW],
  session: [MeshEventKind.SESSION],
  batch: [MeshEventKind.BATCH],
};

export async function events(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: "string", default: DEFAULT_URL },
      kinds: { type: "string", default: "" },
      count: { type: "string" },
      for: { type: "string" },
    },
  });
  const kinds = values.kinds
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean)
    .flatMap((name) => {
      const kind = KIND_NAMES[name];
      if (!kind)
        throw new Error(`--kinds: unknown kind "${name}" (known: ${Object.keys(KIND_NAMES).join(", ")})`);
      return kind;
    });
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(count > 0)) throw new Error("--count must be a positive number");
  const seconds = values.for === undefined ? undefined : Number(values.for);
  if (seconds !== undefined && !(seconds > 0)) throw new Error("--for must be a positive number of seconds");

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  const timer = seconds !== undefined ? setTimeout(onSignal, seconds * 1000) : undefined;
  let seen = 0;
  try {
    const stream = orchestratorClients(values.url).mesh.watchMeshEvents({ kinds }, { signal: stop.signal });
    for await (const { event } of stream) {
      if (!event) continue;
      process.stdout.write(`${describeEvent(event)}\n`);
      if (++seen >= count) break;
    }
  } catch (err) {
    if (!stop.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    process.off("SIGINT", onSignal);
  }
  return 0;
}

/** One line per event: time, kind, then what it is about. */
export function describeEvent(event: MeshEvent): string {
  const time = event.time ? timestampDate(event.time).toISOString() : "-";
  const kind = MeshEventKind[event.kind] ?? String(event.kind);
  const d = event.detail;
  let what = "";
  switch (d.case) {
    case "replica":
      what = `${d.value.domain} ${d.value.address}${d.value.reason ? ` (${d.value.reason})` : ""}`;
      break;
    case "model":
      what = `${d.value.model} on ${d.value.address}`;
      break;
    case "deviceMemory":
      what = `${d.value.deviceId} of ${d.value.address}: ${mib(d.value.freeBytes)} MiB free of ${mib(d.value.totalBytes)}, ${mib(d.value.leasedBytes)} leased`;
      break;
    case "session":
      what = `${d.value.sessionId} ${SessionState[d.value.state]?.toLowerCase()} (${d.value.workflowId}${d.value.batchId ? `, batch ${d.value.batchId}` : ""})${d.value.error ? `: ${d.value.error}` : ""}`;
      break;
    case "batch":
      what = `${d.value.batchId} ${BatchState[d.value.state]?.toLowerCase()}: ${d.value.completed}/${d.value.items} completed, ${d.value.failed} failed`;
      break;
  }
  return `${time} ${kind.padEnd(17)} ${what}`;
}

function mib(bytes: bigint): string {
  return (Number(bytes) / 2 ** 20).toFixed(0);
}
