import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import { type ClientTls, createGrpcTransport } from "@dmesh/runtime";

export type ServiceName = "inference" | "postprocess" | "orchestrator" | "device";

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "../../..");

// Every child this process started, so that a crashed test run still leaves no service behind.
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** One service running as its own process, as in production: `node services/<name>/dist/main.js`. */
export interface ServiceProcess {
  readonly name: string;
  /** host:port it listens on (it was started on port 0 unless a port was given). */
  readonly address: string;
  readonly port: number;
  readonly pid: number;
  readonly logFile: string;
  readonly exited: Promise<void>;
  /** SIGKILL (no cleanup at all) or SIGTERM; resolves once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  isRunning(): boolean;
}

export interface StartOptions {
  /** A label for the log file and error messages, e.g. "inference-1". */
  label: string;
  env: Record<string, string>;
  logDir: string;
  /** Listen here instead of a free port (a restarted service keeping its address). */
  port?: number;
  readyTimeoutMs?: number;
  /** TLS of the readiness checks, for a service that listens with TLS. */
  readyTls?: ClientTls;
}

/** Starts a service, reads the address it logs when listening, and waits until its readiness is SERVING. */
export async function startService(name: ServiceName, options: StartOptions): Promise<ServiceProcess> {
  const logFile = join(options.logDir, `${options.label}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(process.execPath, [join(REPO_ROOT, "services", name, "dist", "main.js")], {
    env: {
      ...process.env,
      LOG_LEVEL: "info",
      HOST: "127.0.0.1",
      ...options.env,
      PORT: String(options.port ?? 0),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      children.delete(child);
      resolve();
    }),
  );
  child.stderr?.pipe(log);
  try {
    const address = await listeningAddress(child, log, options.label, logFile);
    await waitReady(
      address,
      child,
      options.label,
      logFile,
      options.readyTimeoutMs ?? 60_000,
      options.readyTls,
    );
    return {
      name: options.label,
      address,
      port: Number(address.slice(address.lastIndexOf(":") + 1)),
      pid: child.pid ?? -1,
      logFile,
      exited,
      isRunning: () => child.exitCode === null && child.signalCode === null,
      async kill(signal = "SIGKILL") {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        await exited;
      },
    };
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw err;
  }
}

/** A port nothing listens on (for addresses that must not answer). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Copies stdout (pino JSON lines) to the log and resolves with the address of the "listening" line. */
function listeningAddress(
  child: ChildProcess,
  log: WriteStream,
  label: string,
  logFile: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let found = false;
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    lines.on("line", (line) => {
      log.write(`${line}\n`);
      if (found) return;
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.address && entry.msg?.includes("listening")) {
          found = true;
          resolve(entry.address);
        }
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code, signal) => {
      if (!found)
        reject(new Error(`${label} exited (${code ?? signal}) before listening:\n${tail(logFile)}`));
    });
  });
}

async function waitReady(
  address: string,
  child: ChildProcess,
  label: string,
  logFile: string,
  timeoutMs: number,
  tls?: ClientTls,
): Promise<void> {
  const transport = createGrpcTransport({ address, ...(tls ? { tls } : {}) });
  const health = createClient(Health, transport);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${label} exited before it was ready:\n${tail(logFile)}`);
      try {
        if ((await health.check({ service: "" }, { timeoutMs: 1000 })).status === Serving.SERVING) return;
      } catch {
        // still starting
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${label} was not ready within ${timeoutMs} ms:\n${tail(logFile)}`);
  } finally {
    transport.close();
  }
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
