import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { NODE_FLAGS, serviceEntry } from "@dmesh/cli/mesh-launcher";
import { type GenerationSpecSchema, SchedulerKind } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { createGrpcTransport, type GrpcTransport } from "@dmesh/runtime";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { type BenchResult, versus } from "../bench-result.js";
import { type ChildService, startChildService, stopChild } from "../child-service.js";
import { freePort } from "../free-port.js";
import { cpuMicros, median, pairedRatio } from "../measure.js";
import type { WindowRequest, WindowResult } from "./hop-driver-main.js";

const SERVER_ENTRY = fileURLToPath(new URL("./hop-server-main.js", import.meta.url));
const DRIVER_ENTRY = fileURLToPath(new URL("./hop-driver-main.js", import.meta.url));
const MODES = ["bare", "metrics", "traced"] as const;
type Mode = (typeof MODES)[number];
const LABEL: Record<Mode, string> = {
  bare: "no metrics, no tracing",
  metrics: "metrics, scraped every second",
  traced: "metrics + tracing (every span exported over OTLP)",
};
const IN_FLIGHT = 32;
const HOP_ROUNDS = 16;
const GENERATION_ROUNDS = 8;
/** At most 2% fewer calls or generations per second than without (the target). */
const TARGET = { min: 0.98 };

const spec: MessageInitShape<typeof GenerationSpecSchema> = {
  conditioning: { prompt: "a lighthouse on a cliff at sunset" },
  size: { width: 128, height: 128 },
  scheduler: { kind: SchedulerKind.EULER, steps: 4 },
  params: { seed: 7n },
};

/**
 * What observability costs, each against the same without, in one run: the unary hop (our transport and
 * server, 32 calls in flight, client and server each in a process of their own) and a generation (the
 * inference service and the tiny model, one at a time), with gRPC metrics recorded and scraped every second,
 * and with tracing on as well (a span per call and per model run, batched to an OTLP/HTTP collector that
 * this process runs). The contenders take turns round by round; ratios are the medians of the rounds'.
 */
export async function benchObservability(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-bench-observability-"));
  const collector = await startCollector();
  const servers: ChildService[] = [];
  const drivers: ChildProcess[] = [];
  const inference: { child: ChildProcess; transport: GrpcTransport }[] = [];
  const scrapeTargets: string[] = [];
  const scraper = setInterval(() => {
    for (const target of scrapeTargets)
      void fetch(`http://${target}/metrics`).then(
        (r) => r.text(),
        () => "",
      );
  }, 1000);
  try {
    // The unary hop.
    const driverOf = {} as Record<Mode, Driver>;
    for (const mode of MODES) {
      const metricsPort = await freePort();
      const server = await startChildService(
        SERVER_ENTRY,
        [mode, String(metricsPort), collector.url],
        join(dir, `hop-${mode}.log`),
      );
      servers.push(server);
      if (mode !== "bare") scrapeTargets.push(`127.0.0.1:${metricsPort}`);
      const driver = await startDriver(mode, server.address, collector.url);
      drivers.push(driver.child);
      driverOf[mode] = { ...driver, serverPid: server.child.pid ?? Number.NaN };
    }
    const hop = await measureHop(driverOf);

    // A generation.
    const modelsDir = join(dir, "models");
    await ensureTinyModel(join(modelsDir, "tiny-sdxl"));
    const generateOf = {} as Record<Mode, () => Promise<void>>;
    for (const mode of MODES) {
      const started = await startInference(
        mode,
        modelsDir,
        collector.url,
        join(dir, `inference-${mode}.log`),
      );
      inference.push(started);
      if (started.metricsTarget) scrapeTargets.push(started.metricsTarget);
      const client = createClient(InferenceService, started.transport);
      generateOf[mode] = async () => {
        let done = false;
        for await (const { event } of client.generate({ spec }, { timeoutMs: 120_000 }))
          done ||= event.case === "done";
        if (!done) throw new Error(`${mode} inference ended without a done event`);
      };
    }
    const generation = await measureGenerations(generateOf);

    const results: BenchResult[] = [];
    for (const mode of ["metrics", "traced"] as const) {
      results.push(
        versus(
          `observability, unary hop, ${IN_FLIGHT} in flight: ${LABEL[mode]}`,
          hop.rate[mode],
          "calls/s",
          { name: LABEL.bare, value: hop.rate.bare },
          TARGET,
          pairedRatio(hop.rounds[mode], hop.rounds.bare),
        ),
        versus(
          `observability, unary hop CPU per call (client+server): ${LABEL[mode]}`,
          hop.cpuPerCall[mode],
          "µs",
          { name: LABEL.bare, value: hop.cpuPerCall.bare },
        ),
        versus(
          `observability, generation (tiny model, 128x128, 4 steps): ${LABEL[mode]}`,
          generation.rate[mode],
          "images/s",
          { name: LABEL.bare, value: generation.rate.bare },
          TARGET,
          pairedRatio(generation.rounds[mode], generation.rounds.bare),
        ),
      );
    }
    return results;
  } finally {
    clearInterval(scraper);
    for (const driver of drivers) driver.disconnect?.();
    await Promise.all(drivers.map((d) => stopChild(d)));
    await Promise.all(servers.map((s) => s.stop()));
    for (const i of inference) i.transport.close();
    await Promise.all(inference.map((i) => stopChild(i.child, 15_000)));
    await collector.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Driver {
  child: ChildProcess;
  window(req: WindowRequest): Promise<WindowResult>;
  serverPid: number;
}

async function measureHop(drivers: Record<Mode, Driver>) {
  const rounds = { bare: [], metrics: [], traced: [] } as Record<Mode, number[]>;
  const calls = { bare: 0, metrics: 0, traced: 0 } as Record<Mode, number>;
  const cpu = { bare: 0, metrics: 0, traced: 0 } as Record<Mode, number>;
  // Warm-up: every path optimized before anything counts.
  for (const mode of MODES) await drivers[mode].window({ windowMs: 1500, settleMs: 0, inFlight: IN_FLIGHT });
  for (let round = 0; round < HOP_ROUNDS; round++) {
    for (const mode of rotated(round)) {
      const driver = drivers[mode];
      const serverBefore = cpuMicros(driver.serverPid);
      const result = await driver.window({ windowMs: 250, settleMs: 50, inFlight: IN_FLIGHT });
      rounds[mode].push(result.calls / result.seconds);
      calls[mode] += result.calls;
      cpu[mode] += result.cpuMicros + (cpuMicros(driver.serverPid) - serverBefore);
    }
  }
  const rate = Object.fromEntries(MODES.map((m) => [m, median(rounds[m])])) as Record<Mode, number>;
  const cpuPerCall = Object.fromEntries(MODES.map((m) => [m, cpu[m] / calls[m]])) as Record<Mode, number>;
  return { rounds, rate, cpuPerCall };
}

async function measureGenerations(generate: Record<Mode, () => Promise<void>>) {
  const rounds = { bare: [], metrics: [], traced: [] } as Record<Mode, number[]>;
  // The first generations load the model and warm every path up.
  for (const mode of MODES) for (let i = 0; i < 3; i++) await generate[mode]();
  for (let round = 0; round < GENERATION_ROUNDS; round++) {
    for (const mode of rotated(round)) {
      const started = performance.now();
      let images = 0;
      // At least 3 generations, and about a second, per turn.
      while (images < 3 || performance.now() - started < 1000) {
        await generate[mode]();
        images++;
      }
      rounds[mode].push(images / ((performance.now() - started) / 1000));
    }
  }
  const rate = Object.fromEntries(MODES.map((m) => [m, median(rounds[m])])) as Record<Mode, number>;
  return { rounds, rate };
}

/** The modes in a different order each round, so that none always follows the same other one. */
function rotated(round: number): Mode[] {
  return MODES.map((_, k) => MODES[(k + round) % MODES.length] as Mode);
}

async function startDriver(
  mode: Mode,
  address: string,
  collector: string,
): Promise<Omit<Driver, "serverPid">> {
  const child = spawn(process.execPath, [DRIVER_ENTRY, mode, address, collector], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`driver ${mode} exited (${code}) before it was ready`)));
  });
  return {
    child,
    window: (req) =>
      new Promise<WindowResult>((resolve) => {
        child.once("message", (result: WindowResult) => resolve(result));
        child.send(req);
      }),
  };
}

/** An inference process as deployed (its node flags, the tiny model), metrics and tracing as `mode` says. */
async function startInference(
  mode: Mode,
  modelsDir: string,
  collector: string,
  logFile: string,
): Promise<{ child: ChildProcess; transport: GrpcTransport; metricsTarget?: string }> {
  const port = await freePort();
  const metricsPort = mode === "bare" ? -1 : await freePort();
  const { openSync, closeSync } = await import("node:fs");
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, [...NODE_FLAGS.inference, serviceEntry("inference")], {
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      MODELS_DIR: modelsDir,
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: "info",
      OTEL_EXPORTER_OTLP_ENDPOINT: mode === "traced" ? collector : "",
    },
    stdio: ["ignore", log, "inherit"],
  });
  closeSync(log);
  const transport = createGrpcTransport({ address: `127.0.0.1:${port}`, observe: false });
  const health = createClient(Health, transport);
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`inference (${mode}) exited (${child.exitCode}); see ${logFile}`);
    const status = await health.check({ service: "" }, { timeoutMs: 1000 }).then(
      (r) => r.status,
      () => Serving.UNKNOWN,
    );
    if (status === Serving.SERVING) break;
    if (Date.now() > deadline) throw new Error(`inference (${mode}) was not ready within 120 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, transport, ...(metricsPort >= 0 ? { metricsTarget: `127.0.0.1:${metricsPort}` } : {}) };
}

/** An OTLP/HTTP collector that takes every export and keeps nothing. */
async function startCollector(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
