import { execFile } from "node:child_process";

export type CommandResult =
  | { readonly ok: true; readonly stdout: string }
  | { readonly ok: false; readonly reason: "not_found" | "failed" | "timeout"; readonly message: string };

export interface RunOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/**
 * Runs a probe command with a deadline. A missing, failing or hanging tool is a finding, not an
 * exception; only an abort through `signal` rejects (with the signal's reason).
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: RunOptions,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        timeout: options.timeoutMs,
        signal: options.signal,
        maxBuffer: 1 << 20,
        encoding: "utf8",
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, stdout });
        if (options.signal?.aborted) return reject(options.signal.reason);
        if ((error as NodeJS.ErrnoException).code === "ENOENT") {
          return resolve({ ok: false, reason: "not_found", message: `${command} is not installed` });
        }
        if (error.killed) {
          return resolve({
            ok: false,
            reason: "timeout",
            message: `${command} did not answer within ${options.timeoutMs} ms`,
          });
        }
        const detail = (stderr || stdout || error.message).trim().split("\n")[0];
        resolve({
          ok: false,
          reason: "failed",
          message: `${command} failed (exit ${String(error.code ?? "?")}): ${detail}`,
        });
      },
    );
  });
}
