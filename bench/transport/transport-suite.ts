import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, type RatioTarget, versus } from "../bench-result.js";
import { type ChildService, startChildService } from "../child-service.js";
import {
  type Contender,
  callsPerSecond,
  cpuMicros,
  interleavedLatencies,
  interleavedThroughput,
  type Latencies,
  median,
  pairedRatio,
  type Tally,
  warmUp,
} from "../measure.js";
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

const TRANSPORTS = {
  dmesh: "dmesh hop",
  dmeshLogged: "dmesh hop, LOG_LEVEL=debug",
  grpcJs: "bare grpc-js",
  grpcJsCarrying: "bare grpc-js + request id & deadline",
  connectNode: "stock connect-node",
  pipe: "stdin/stdout JSON lines",
} as const;
type Transport = keyof typeof TRANSPORTS;
const NAMES = Object.keys(TRANSPORTS) as Transport[];

/** A figure, and the same per round where the transports took turns (for paired ratios). */
interface Figure {
  value: number;
  rounds?: number[];
}
type Figures = Record<
  "p50Us" | "callsPerSecond" | "cpuUsPerCall" | "streamMessagesPerSecond" | "streamMessagesPerSecondInFlight",
  Figure
>;

/**
 * Unary hop and server-stream figures for our transport (our grpc-js adapter and transport with the
 * services' interceptors, logging at their default level, info, where quick successful calls write no
 * access line), the same at debug (every call writes one), a bare grpc-js pair (also with each call
 * carrying our request id and deadline), stock connect-node and the old JSON-lines pipe: each server in its
 * own process, the same messages, on loopback. The transports take turns throughout, so that the ratios hold
 * on a machine others are using, and the ratios are the medians of the rounds' ratios.
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
    clients.dmeshLogged = createDmeshEchoClient(...(await serve(["dmesh", "debug"])));
    const grpcJsServer = await serve(["grpc-js"]);
    clients.grpcJs = createGrpcJsEchoClient(...grpcJsServer);
    clients.grpcJsCarrying = createGrpcJsEchoClient(...grpcJsServer, true);
    clients.connectNode = createConnectNodeEchoClient(...(await serve(["connect-node"])));
    clients.pipe = createPipeEchoClient(SERVER_ENTRY);
    return compareTransports(await measure(NAMES.map((name) => clients[name] as EchoClient)));
  } finally {
    await Promise.all(Object.values(clients).map((c) => c.close()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(logDir, { recursive: true, force: true });
  }
}

async function measure(clients: EchoClient[]): Promise<Record<Transport, Figures>> {
  const contenders = (call: (client: EchoClient) => Promise<unknown>): Contender[] =>
    clients.map((client) => ({
      call: () => call(client),
      cpuMicros: () => cpuMicros(process.pid) + cpuMicros(client.serverPid),
    }));
  const unary = contenders((c) => c.tokenize());
  const streams = contenders((c) => c.stream());
  // Measured at steady state: 200 warm-up calls left our path's code not yet optimized (p50 1.20x bare
  // grpc-js, 1.06x after thousands of calls).
  await warmUp(unary, 5000, IN_FLIGHT);
  await warmUp(streams, 100, IN_FLIGHT);
  // Whole blocks of warm-up and of measurement, so that every round's pair holds the same number of calls.
  const latencies = await interleavedLatencies(unary, { warmup: 210, count: 3000, block: 30, settle: 10 });
  const calls = await interleavedThroughput(unary, {
    inFlight: IN_FLIGHT,
    windowMs: 200,
    windows: 24,
    settleMs: 50,
  });
  const single = await interleavedThroughput(streams, { inFlight: 1, windowMs: 200, windows: 6 });
  const many = await interleavedThroughput(streams, { inFlight: IN_FLIGHT, windowMs: 300, windows: 6 });
  const rate = (tally: Tally, scale = 1): Figure => ({
    value: callsPerSecond(tally) * scale,
    rounds: tally.rounds.map((perSecond) => perSecond * scale),
  });
  return Object.fromEntries(
    NAMES.map((name, i) => {
      const call = calls[i] as Tally;
      const latency = latencies[i] as Latencies;
      const figures: Figures = {
        p50Us: { value: median(latency.all), rounds: latency.rounds },
        callsPerSecond: rate(call),
        cpuUsPerCall: { value: call.cpuMicros / call.calls },
        streamMessagesPerSecond: rate(single[i] as Tally, STREAM_LENGTH),
        streamMessagesPerSecondInFlight: rate(many[i] as Tally, STREAM_LENGTH),
      };
      return [name, figures];
    }),
  ) as Record<Transport, Figures>;
}

/**
 * Ours (as deployed, and with every call logged) and connect-node against bare grpc-js; ours against grpc-js
 * carrying what our calls carry (what our layers cost beyond the deadline and request id), and the pipe.
 * The targets are the deployed hop's (LOG_LEVEL=info); the debug row shows what a line per call costs.
 */
function compareTransports(figures: Record<Transport, Figures>): BenchResult[] {
  const metrics: { label: string; key: keyof Figures; unit: string; target?: RatioTarget }[] = [
    { label: "unary p50, 1 in flight", key: "p50Us", unit: "µs", target: { max: 1.1 } },
    {
      label: `unary, ${IN_FLIGHT} in flight`,
      key: "callsPerSecond",
      unit: "calls/s",
      target: { min: 1 / 1.1 },
    },
    { label: `unary CPU per call (client+server), ${IN_FLIGHT} in flight`, key: "cpuUsPerCall", unit: "µs" },
    { label: `stream of ${STREAM_LENGTH}, 1 in flight`, key: "streamMessagesPerSecond", unit: "msgs/s" },
    {
      label: `stream of ${STREAM_LENGTH}, ${IN_FLIGHT} in flight`,
      key: "streamMessagesPerSecondInFlight",
      unit: "msgs/s",
    },
  ];
  return metrics.flatMap(({ label, key, unit, target }) => {
    const of = (name: Transport) => ({ name: TRANSPORTS[name], value: figures[name][key].value });
    const row = (name: Transport, baseline: Transport, goal?: RatioTarget) => {
      const [ours, theirs] = [figures[name][key].rounds, figures[baseline][key].rounds];
      const paired = ours && theirs ? pairedRatio(ours, theirs) : undefined;
      return versus(
        `${label}: ${TRANSPORTS[name]}`,
        figures[name][key].value,
        unit,
        of(baseline),
        goal,
        paired,
      );
    };
    return [
      row("dmesh", "grpcJs", target),
      row("dmeshLogged", "grpcJs"),
      row("dmesh", "grpcJsCarrying"),
      row("connectNode", "grpcJs"),
      row("dmesh", "pipe"),
    ];
  });
}
