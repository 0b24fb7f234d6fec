import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, type RatioTarget, versus } from "../bench-result.js";
import { type ChildService, startChildService } from "../child-service.js";
import { cpuMicros, median, sequentialLatencies, throughput } from "../measure.js";
import {
  createConnectNodeEchoClient,
  createDmeshEchoClient,
  createGrpcJsEchoClient,
  createPipeEchoClient,
  type EchoClient,
} from "./echo-clients.js";
import { STREAM_LENGTH } from "./echo-messages.js";

const SERVER_ENTRY = fileURLToPath(new URL("./echo-server-main.js", import.meta.url));
const IN_FLIGHT = 32;
// Rounds take the transports in turn (each round starting with another), so that a slow moment of this
// shared machine does not land on one of them; each figure is the median of its rounds.
const ROUNDS = 3;

const TRANSPORTS = {
  dmesh: "dmesh hop",
  dmeshQuiet: "dmesh hop, LOG_LEVEL=warn",
  grpcJs: "bare grpc-js",
  connectNode: "stock connect-node",
  pipe: "stdin/stdout JSON lines",
} as const;
type Transport = keyof typeof TRANSPORTS;

interface Figures {
  p50Us: number;
  callsPerSecond: number;
  /** Client and server CPU time per call at IN_FLIGHT: what the hop costs, whatever else runs here. */
  cpuUsPerCall: number;
  streamMessagesPerSecond: number;
  streamMessagesPerSecondInFlight: number;
}

async function measureOnce(client: EchoClient): Promise<Figures> {
  const latencies = await sequentialLatencies(() => client.tokenize(), { warmup: 100, count: 1000 });
  const unary = { inFlight: IN_FLIGHT, durationMs: 1200 };
  await throughput(() => client.tokenize(), { ...unary, durationMs: 300 });
  const cpuBefore = cpuMicros(process.pid) + cpuMicros(client.serverPid);
  const calls = await throughput(() => client.tokenize(), unary);
  const cpuUs = cpuMicros(process.pid) + cpuMicros(client.serverPid) - cpuBefore;
  await throughput(() => client.stream(), { inFlight: 1, durationMs: 200 });
  const streams = await throughput(() => client.stream(), { inFlight: 1, durationMs: 800 });
  await throughput(() => client.stream(), { inFlight: IN_FLIGHT, durationMs: 300 });
  const streamsInFlight = await throughput(() => client.stream(), { inFlight: IN_FLIGHT, durationMs: 1200 });
  return {
    p50Us: median(latencies),
    callsPerSecond: calls.perSecond,
    cpuUsPerCall: cpuUs / calls.calls,
    streamMessagesPerSecond: streams.perSecond * STREAM_LENGTH,
    streamMessagesPerSecondInFlight: streamsInFlight.perSecond * STREAM_LENGTH,
  };
}

/**
 * Unary hop and server-stream figures for our transport (our grpc-js adapter and transport with the
 * services' interceptors and access log at their default level, info), the same with the access log off
 * (warn), a bare grpc-js pair, stock connect-node and the old JSON-lines pipe: each server in its own
 * process, the same messages, on loopback.
 */
export async function benchTransport(): Promise<BenchResult[]> {
  const logDir = mkdtempSync(join(tmpdir(), "dmesh-bench-transport-"));
  const servers: ChildService[] = [];
  const clients: Partial<Record<Transport, EchoClient>> = {};
  try {
    const serve = async (args: string[]) => {
      const server = await startChildService(SERVER_ENTRY, args, join(logDir, `${args.join("-")}.log`));
      servers.push(server);
      return [server.address, server.child.pid ?? Number.NaN] as const;
    };
    clients.dmesh = createDmeshEchoClient(...(await serve(["dmesh", "info"])));
    clients.dmeshQuiet = createDmeshEchoClient(...(await serve(["dmesh", "warn"])));
    clients.grpcJs = createGrpcJsEchoClient(...(await serve(["grpc-js"])));
    clients.connectNode = createConnectNodeEchoClient(...(await serve(["connect-node"])));
    clients.pipe = createPipeEchoClient(SERVER_ENTRY);
    return compareTransports(await measureRounds(clients as Record<Transport, EchoClient>));
  } finally {
    await Promise.all(Object.values(clients).map((c) => c.close()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(logDir, { recursive: true, force: true });
  }
}

async function measureRounds(clients: Record<Transport, EchoClient>): Promise<Record<Transport, Figures>> {
  const names = Object.keys(TRANSPORTS) as Transport[];
  const rounds = new Map<Transport, Figures[]>(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const first = round % names.length;
    for (const name of [...names.slice(first), ...names.slice(0, first)]) {
      rounds.get(name)?.push(await measureOnce(clients[name]));
    }
  }
  const medians = (figures: Figures[]): Figures => {
    const of = (key: keyof Figures) => median(figures.map((f) => f[key]));
    return {
      p50Us: of("p50Us"),
      callsPerSecond: of("callsPerSecond"),
      cpuUsPerCall: of("cpuUsPerCall"),
      streamMessagesPerSecond: of("streamMessagesPerSecond"),
      streamMessagesPerSecondInFlight: of("streamMessagesPerSecondInFlight"),
    };
  };
  return Object.fromEntries(names.map((n) => [n, medians(rounds.get(n) ?? [])])) as Record<
    Transport,
    Figures
  >;
}

/** Ours (access log on and off) and connect-node against bare grpc-js; ours against the pipe. */
function compareTransports(figures: Record<Transport, Figures>): BenchResult[] {
  const metrics: { label: string; key: keyof Figures; unit: string; target?: RatioTarget }[] = [
    { label: "unary p50, 1 in flight", key: "p50Us", unit: "µs", target: { max: 1.1 } },
    {
      label: `unary, ${IN_FLIGHT} in flight`,
      key: "callsPerSecond",
      unit: "calls/s",
      target: { min: 1 / 1.1 },
    },
    { label: `unary CPU per call, ${IN_FLIGHT} in flight`, key: "cpuUsPerCall", unit: "µs" },
    { label: `stream of ${STREAM_LENGTH}, 1 in flight`, key: "streamMessagesPerSecond", unit: "msgs/s" },
    {
      label: `stream of ${STREAM_LENGTH}, ${IN_FLIGHT} in flight`,
      key: "streamMessagesPerSecondInFlight",
      unit: "msgs/s",
    },
  ];
  return metrics.flatMap(({ label, key, unit, target }) => {
    const of = (name: Transport) => ({ name: TRANSPORTS[name], value: figures[name][key] });
    const bare = of("grpcJs");
    const row = (name: Transport, baseline = bare, goal = target) =>
      versus(`${label}: ${TRANSPORTS[name]}`, figures[name][key], unit, baseline, goal);
    return [
      row("dmesh"),
      row("dmeshQuiet"),
      row("connectNode", bare, undefined),
      row("dmesh", of("pipe"), undefined),
    ];
  });
}
