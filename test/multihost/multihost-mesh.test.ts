import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromJson } from "@bufbuild/protobuf";
import { type ServiceName, serviceEntry } from "@dmesh/cli/mesh-launcher";
import { SessionSchema, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVirtualLan, namespaceSupport, type VirtualLan } from "./virtual-lan.js";

// Each service on its own simulated host (a network namespace with its own address on a private bridge),
// the client on another: every hop crosses a real network stack, and one inference host can be cut off.
const unsupported = namespaceSupport();
const TITLE = unsupported ? `a mesh across hosts (skipped: ${unsupported})` : "a mesh across hosts";

const CLI = fileURLToPath(new URL("../../packages/cli/dist/main.js", import.meta.url));
const HOSTS = {
  client: 2,
  orchestrator: 10,
  "inference-a": 21,
  "inference-b": 22,
  postprocess: 30,
  device: 40,
};
const PORTS: Record<ServiceName, number> = {
  orchestrator: 50051,
  inference: 50052,
  postprocess: 50053,
  device: 50054,
};
const GENERATION = ["--steps", "4", "--width", "64", "--height", "64"];
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe.skipIf(unsupported)(TITLE, () => {
  let lan: VirtualLan;
  let dir: string;
  const services: ChildProcess[] = [];
  const at = (host: string, service: ServiceName) => `${lan.host(host).address}:${PORTS[service]}`;
  const url = () => `http://${at("orchestrator", "orchestrator")}`;

  /** Runs the dmesh CLI on the client host, killed if it outlives `timeoutMs`. */
  const cli = (args: string[], timeoutMs = 30_000) =>
    new Promise<CliResult>((resolve, reject) => {
      const [command, argv] = lan.inside("client", [process.execPath, CLI, ...args, "--url", url()]);
      const child = spawn(command, argv, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.once("error", reject);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  /** `dmesh status` rows as [domain, address, health]. */
  const meshStatus = async () => {
    const { stdout } = await cli(["status"], 15_000);
    return stdout
      .split("\n")
      .slice(1)
      .map((line) => line.split(/\s{2,}/))
      .filter((cells) => cells.length >= 3)
      .map(([domain = "", address = "", health = ""]) => ({ domain, address, health }));
  };

  const healthOf = async (address: string) => (await meshStatus()).find((r) => r.address === address)?.health;

  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${what}: not within ${timeoutMs / 1000} s; logs:\n${logTails()}`);
  };

  const logTails = () =>
    Object.keys(HOSTS)
      .filter((h) => h !== "client")
      .map((h) => `--- ${h}\n${readLog(h).split("\n").slice(-8).join("\n")}`)
      .join("\n");
  const readLog = (host: string) => {
    try {
      return readFileSync(join(dir, `${host}.log`), "utf8");
    } catch {
      return "(no log)";
    }
  };

  /** Generates one image from the client host; returns the session as the orchestrator stored it. */
  const generate = async (seed: number) => {
    const out = join(dir, `image-${seed}.png`);
    const run = await cli(
      ["generate", "a cat on a hill", "--seed", String(seed), ...GENERATION, "--out", out],
      60_000,
    );
    expect(run.code, `generate exited ${run.code}: ${run.stderr}\n${logTails()}`).toBe(0);
    expect(readFileSync(out).subarray(0, 8)).toEqual(PNG_SIGNATURE);
    const id = /session ([\da-f-]{36})/.exec(run.stderr)?.[1];
    expect(id, run.stderr).toBeDefined();
    const shown = await cli(["session", id as string]);
    expect(shown.code, shown.stderr).toBe(0);
    // `dmesh session` prints proto JSON: read back as protobuf-es reads any Connect JSON.
    return fromJson(SessionSchema, JSON.parse(shown.stdout));
  };

  const start = (host: string, service: ServiceName, env: Record<string, string>) => {
    const [command, argv] = lan.inside(host, [process.execPath, serviceEntry(service)]);
    const child = spawn(command, argv, {
      // Each service listens on its host's own address only: nothing may assume a shared loopback.
      env: {
        ...process.env,
        HOST: lan.host(host).address,
        PORT: String(PORTS[service]),
        LOG_LEVEL: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const log = createWriteStream(join(dir, `${host}.log`));
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    services.push(child);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "dmesh-multihost-"));
    await ensureTinyModel(join(dir, "models", "tiny-sdxl"));
    lan = createVirtualLan("10.77.0", HOSTS);
    start("device", "device", {});
    start("postprocess", "postprocess", {});
    for (const host of ["inference-a", "inference-b"])
      start(host, "inference", { MODELS_DIR: join(dir, "models") });
    start("orchestrator", "orchestrator", {
      DATA_DIR: join(dir, "data"),
      INFERENCE_URLS: `${at("inference-a", "inference")},${at("inference-b", "inference")}`,
      POSTPROCESS_URLS: at("postprocess", "postprocess"),
      DEVICE_URLS: at("device", "device"),
      HEALTH_INTERVAL_MS: "300",
    });
    // `dmesh status` exits 0 once every instructor answers SERVING to the orchestrator.
    await waitFor(
      "every service SERVING across hosts",
      async () => (await cli(["status"], 15_000)).code === 0,
      90_000,
    );
  }, 150_000);

  afterAll(async () => {
    await Promise.all(
      services.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
    lan?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("reports every instructor on its own host", async () => {
    const rows = await meshStatus();
    expect(rows.map((r) => `${r.domain} ${r.address} ${r.health}`).sort()).toEqual(
      [
        `device ${at("device", "device")} SERVING`,
        `inference ${at("inference-a", "inference")} SERVING`,
        `inference ${at("inference-b", "inference")} SERVING`,
        `postprocess ${at("postprocess", "postprocess")} SERVING`,
      ].sort(),
    );
  });

  it("runs a generation from the client host through the orchestrator, inference and postprocess hosts", async () => {
    const session = await generate(1);
    expect(session.state).toBe(SessionState.COMPLETED);
    // With every replica idle the orchestrator takes the first one listed.
    expect(session.worker).toBe(at("inference-a", "inference"));
  });

  it("routes around an inference host whose link is cut", async () => {
    const cut = at("inference-a", "inference");
    lan.setLink("inference-a", false);
    await waitFor(
      "the orchestrator sees inference-a fail",
      async () => (await healthOf(cut)) !== "SERVING",
      20_000,
    );
    expect(await healthOf(cut)).toBe("UNREACHABLE");
    for (const seed of [2, 3]) {
      const session = await generate(seed);
      expect(session.state).toBe(SessionState.COMPLETED);
      expect(session.worker).toBe(at("inference-b", "inference"));
      expect(session.attempts).toBe(1);
    }
  });

  it("takes the host back once its link returns", async () => {
    lan.setLink("inference-a", true);
    const back = at("inference-a", "inference");
    await waitFor("inference-a SERVING again", async () => (await healthOf(back)) === "SERVING", 20_000);
    const session = await generate(4);
    expect(session.worker).toBe(back);
  });
});
