import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

export interface ChildService {
  /** 127.0.0.1:port the child listens on. */
  readonly address: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Runs `entry` in its own Node process, its stdout (where pino writes) going to `logFile` as a service's
 * would, and waits for it to send `{ port }` over IPC once it listens. Servers live in another process than
 * the client, as between real services, so neither's CPU time hides inside the other's event loop; `nodeFlags`
 * go before the entry, as a service's own flags do (NODE_FLAGS).
 */
export async function startChildService(
  entry: string,
  args: string[],
  logFile: string,
  env: Record<string, string> = {},
  nodeFlags: readonly string[] = [],
): Promise<ChildService> {
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, [...nodeFlags, entry, ...args], {
    stdio: ["ignore", log, "inherit", "ipc"],
    env: { ...process.env, ...env },
  });
  closeSync(log);
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (msg: { port?: number }) =>
      typeof msg.port === "number"
        ? resolve(msg.port)
        : reject(new Error(`${entry}: unexpected ${JSON.stringify(msg)}`)),
    );
    child.once("exit", (code, signal) =>
      reject(new Error(`${entry} ${args.join(" ")} exited (${code ?? signal}) before listening`)),
    );
  });
  const stop = () => stopChild(child);
  return { address: `127.0.0.1:${port}`, child, stop };
}

/** SIGTERM, then SIGKILL if the child has not exited within `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
