import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../faults/support/sessions.js";
import { freePortRun } from "../support/free-ports.js";
import { type OutputProcess, startOutputProcess } from "../support/output-process.js";

const CLI = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));

interface StateFile {
  url: string;
  pid: number;
  services: Record<string, { pid: number; restarts: number; lastExit: string }>;
}

interface Up {
  process: OutputProcess;
  dir: string;
  url: string;
  state(): StateFile | undefined;
  dmesh(args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
}

const ups: Up[] = [];
afterEach(async () => {
  for (const up of ups.splice(0)) {
    up.process.signalGroup("SIGKILL");
    await up.process.exited;
    rmSync(up.dir, { recursive: true, force: true });
  }
});

/** `dmesh up` as a user runs it, on four free ports, with a small first image; resolves once it serves. */
async function startUp(): Promise<Up> {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-up-"));
  const basePort = await freePortRun(4);
  const process_ = startOutputProcess(
    process.execPath,
    [CLI, "up", "--base-port", String(basePort), "--data", "mesh", "--width", "64", "--height", "64"],
    { cwd: dir, env: { LOG_LEVEL: "warn" } },
  );
  const up: Up = {
    process: process_,
    dir,
    url: `http://127.0.0.1:${basePort}`,
    state: () => {
      try {
        return JSON.parse(readFileSync(join(dir, "mesh", "services.json"), "utf8")) as StateFile;
      } catch {
        return undefined;
      }
    },
    dmesh: (args, timeoutMs = 60_000) =>
      new Promise((resolve) => {
        execFile(
          process.execPath,
          [CLI, ...args, "--url", up.url],
          { cwd: dir, timeout: timeoutMs },
          (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      }),
  };
  ups.push(up);
  await process_.waitForOutput(/serving on http:\/\/127\.0\.0\.1:\d+/, 180_000);
  return up;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("dmesh up supervises its services", () => {
  it("restarts an inference process killed mid-session; the session completes, status shows the restart, Ctrl-C stops all", async () => {
    const up = await startUp();
    const before = up.state();
    expect(Object.keys(before?.services ?? {}).sort()).toEqual([
      "device",
      "inference",
      "orchestrator",
      "postprocess",
    ]);
    const victim = before?.services.inference?.pid ?? 0;
    expect(isAlive(victim)).toBe(true);

    const detached = await up.dmesh([
      "generate",
      "a long one",
      ...["--steps", "200", "--width", "128", "--height", "128", "--seed", "3", "--detach"],
    ]);
    expect(detached.code).toBe(0);
    const id = detached.stdout.trim();
    // Mid-session: some steps done, most to go.
    const running = await eventually(
      async () => {
        const { stdout } = await up.dmesh(["session", id]);
        const session = JSON.parse(stdout) as { denoiseStep?: number; state: string };
        return (session.denoiseStep ?? 0) >= 3 ? session : undefined;
      },
      60_000,
      "the session to reach step 3",
    );
    expect(running.state).toBe("SESSION_STATE_RUNNING");
    process.kill(victim, "SIGKILL");

    await up.process.waitForOutput(
      /inference exited unexpectedly \(SIGKILL\); restarting it in 0\.5 s/,
      10_000,
    );
    await up.process.waitForOutput(/inference {4,}ready again on 127\.0\.0\.1:\d+/, 120_000);
    const watched = await up.dmesh(["watch", id, "--out", "out"], 120_000);
    expect(watched.stderr).toContain(`session ${id}: completed`);
    expect(existsSync(join(up.dir, "out", `${id}-0.png`))).toBe(true);
    // Finished by the restarted process: a second attempt, resumed from the session's checkpoint.
    const finished = JSON.parse((await up.dmesh(["session", id])).stdout) as {
      state: string;
      attempts: number;
    };
    expect(finished.state).toBe("SESSION_STATE_COMPLETED");
    expect(finished.attempts).toBeGreaterThanOrEqual(2);

    const after = up.state();
    const inference = after?.services.inference;
    expect(inference?.restarts).toBe(1);
    expect(inference?.lastExit).toBe("SIGKILL");
    expect(inference?.pid).not.toBe(victim);
    const status = await up.dmesh(["status", "--data", "mesh"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`^inference\\s+${inference?.pid}\\s+1\\s+SIGKILL$`, "m"));
    for (const name of ["device", "postprocess", "orchestrator"])
      expect(status.stdout).toMatch(new RegExp(`^${name}\\s+\\d+\\s+0$`, "m"));

    // A terminal's Ctrl-C: SIGINT to up and to every service, which the supervisor must not restart.
    const pids = Object.values(after?.services ?? {}).map((s) => s.pid);
    up.process.signalGroup("SIGINT");
    const exit = await up.process.exited;
    expect(exit.code, up.process.output()).toBe(0);
    expect(up.process.output().match(/restarting it/g)).toHaveLength(1);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(up.state()).toBeUndefined();
  }, 420_000);

  it("stops the mesh, saying why, when a service keeps crashing", async () => {
    const up = await startUp();
    const killed = new Set<number>();
    const exit = await eventually(
      () => {
        const pid = up.state()?.services.device?.pid ?? 0;
        if (pid > 0 && !killed.has(pid) && isAlive(pid)) {
          killed.add(pid);
          process.kill(pid, "SIGKILL");
        }
        return up.process.child.exitCode === null ? undefined : up.process.exited;
      },
      120_000,
      "dmesh up to give up",
    );
    expect(exit.code).toBe(1);
    expect(killed.size).toBe(6);
    expect(up.process.output()).toMatch(
      /dmesh: device exited \(SIGKILL\) 6 times within 60 s, after 5 restarts; stopping the mesh \(logs in mesh\/logs\)/,
    );
    expect(up.state()).toBeUndefined();
  }, 300_000);
});
