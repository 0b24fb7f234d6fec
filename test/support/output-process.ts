import { type ChildProcess, spawn } from "node:child_process";
import { eventually } from "../faults/support/sessions.js";

/** A command run in its own process group, its stdout and stderr kept together as they arrive. */
export interface OutputProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Waits until the output matches `pattern`; fails with the output so far if it does not in time. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Its exit: the code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Signals the whole group, as a terminal's Ctrl-C does (SIGINT to every process in the foreground group). */
  signalGroup(signal: NodeJS.Signals): void;
}

const started = new Set<ChildProcess>();
// A test that fails midway leaves nothing running.
process.once("exit", () => {
  for (const child of started) if (child.exitCode === null && child.pid) killGroup(child.pid, "SIGKILL");
});

export function startOutputProcess(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): OutputProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  started.add(child);
  let text = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      started.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    output: () => text,
    exited,
    waitForOutput: (pattern, timeoutMs) =>
      eventually(
        () => text.match(pattern) ?? undefined,
        timeoutMs,
        `${pattern} in the output of ${command} ${args.join(" ")}`,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- output so far:\n${text.slice(-3000)}`);
      }),
    signalGroup: (signal) => {
      if (child.pid) killGroup(child.pid, signal);
    },
  };
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
