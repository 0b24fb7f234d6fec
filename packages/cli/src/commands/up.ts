import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureTinyModel } from "@dmesh/tiny-model";
import { API_KEY_OPTION, orchestratorClients } from "../clients.js";
import { freePort, launchMesh, SERVICES, type ServiceName } from "../mesh-launcher.js";
import { describeEnd, runWorkflow } from "../run-workflow.js";
import { DEFAULT_RESTART_POLICY, type ServiceSupervisor, superviseMesh } from "../service-supervisor.js";
import { SPEC_FLAGS, specFromFlags } from "../spec-options.js";
import { removeSupervisorState, SUPERVISOR_STATE_FILE, writeSupervisorState } from "../supervisor-state.js";

export const UP_HELP = `dmesh up [prompt] [--exit] [--out FILE] [--base-port 50051] [--data .dmesh] [generation flags]
  Starts device, postprocess, inference and orchestrator as separate processes on 127.0.0.1 (generating the
  tiny model first if no model is present), makes one image through the orchestrator, then keeps serving
  until Ctrl-C (or exits at once with --exit). A service that crashes is restarted with a growing backoff;
  one that crashes ${DEFAULT_RESTART_POLICY.maxRestarts + 1} times within ${DEFAULT_RESTART_POLICY.windowMs / 1000} s stops the mesh. \`dmesh status\` shows the restarts.`;

const DEFAULT_PROMPT = "a lighthouse on a cliff at sunset, oil painting";

export async function up(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...SPEC_FLAGS,
      exit: { type: "boolean", default: false },
      out: { type: "string" },
      "base-port": { type: "string", default: "50051" },
      data: { type: "string", default: ".dmesh" },
      ...API_KEY_OPTION,
      "log-level": { type: "string", default: "info" },
    },
  });
  const root = values.data;
  const modelsDir = process.env.MODELS_DIR ?? join(root, "models");
  const basePort = Number(values["base-port"]);
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65530)
    throw new Error("--base-port must be a port number");
  const say = (line: string) => process.stdout.write(`dmesh: ${line}\n`);

  if (!hasModel(modelsDir)) {
    const started = performance.now();
    const dir = join(modelsDir, "tiny-sdxl");
    const { written } = await ensureTinyModel(dir);
    say(
      `tiny SDXL-layout model ${written ? "generated" : "found"} at ${dir} (${Math.round(performance.now() - started)} ms)`,
    );
  }

  const ports = Object.fromEntries(
    (["orchestrator", "inference", "postprocess", "device"] as ServiceName[]).map((name, i) => [
      name,
      basePort + i,
    ]),
  ) as Record<ServiceName, number>;
  const logDir = join(root, "logs");
  // Prometheus /metrics: the orchestrator on its own port, the gRPC-only services each on a free one.
  const metricsPorts: Partial<Record<ServiceName, number>> = {};
  for (const name of ["inference", "postprocess", "device"] as const)
    metricsPorts[name] = await freePort("127.0.0.1");
  say(`starting ${SERVICES.join(", ")} (logs in ${logDir})`);
  const mesh = await launchMesh(
    {
      ports,
      host: "127.0.0.1",
      dataDir: join(root, "data"),
      modelsDir,
      logDir,
      env: {
        LOG_LEVEL: values["log-level"],
        // The orchestrator retries a call whose service went away; at its default backoff (250 ms, doubling,
        // at most 10 s) 8 attempts span ~26 s, time for the supervisor to bring a crashed service back.
        MAX_ATTEMPTS: process.env.MAX_ATTEMPTS ?? "8",
      },
      metricsPorts,
    },
    (name, address) =>
      say(
        `${name.padEnd(12)} ready on ${address} (metrics http://127.0.0.1:${metricsPorts[name] ?? ports[name]}/metrics)`,
      ),
  );

  const stateFile = join(root, SUPERVISOR_STATE_FILE);
  const writeState = (services: ReturnType<ServiceSupervisor["services"]>) =>
    writeSupervisorState(stateFile, { url: mesh.url, pid: process.pid, services });
  const supervisor = superviseMesh(mesh, DEFAULT_RESTART_POLICY, {
    crashed: (name, exit, delayMs) =>
      say(
        `${name} exited unexpectedly (${exit}); restarting it in ${(delayMs / 1000).toFixed(1)} s (log: ${join(logDir, `${name}.log`)})`,
      ),
    restarted: (name) => say(`${name.padEnd(12)} ready again on 127.0.0.1:${ports[name]}`),
    changed: writeState,
  });
  writeState(supervisor.services());

  let stopping: Promise<number> | undefined;
  const stop = (code: number, why?: string) => {
    stopping ??= (async () => {
      supervisor.stop();
      say(why ? `${why}; stopping the mesh (logs in ${logDir})` : "stopping the mesh");
      await mesh.stop();
      removeSupervisorState(stateFile);
      return code;
    })();
    return stopping;
  };
  // Ctrl-C, SIGTERM or a crash loop; a terminal's Ctrl-C reaches the services too, and the supervisor,
  // stopped first, does not restart them.
  const ended = new Promise<number>((resolve) => {
    const onSignal = () => void stop(0).then(resolve);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    void supervisor.gaveUp.then((reason) => stop(1, reason).then(resolve));
  });

  const firstImage = async (): Promise<number | undefined> => {
    try {
      const prompt = positionals.join(" ") || DEFAULT_PROMPT;
      const spec = specFromFlags(prompt, values, { width: 512, height: 512, steps: 20 });
      say(`txt2img "${prompt}" ${spec.size?.width}x${spec.size?.height}, ${spec.scheduler?.steps} steps`);
      const started = performance.now();
      const { session, files } = await runWorkflow(orchestratorClients(mesh.url, values["api-key"]), {
        workflowId: "txt2img",
        spec,
        out: values.out ?? join(root, "out"),
      });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (files.length === 0) {
        say(`no image: ${describeEnd(session)}`);
        return await stop(1);
      }
      for (const file of files) {
        say(
          `wrote ${file} (${Math.round(statSync(file).size / 1024)} KiB, seed ${session?.seeds[0] ?? "?"}) in ${seconds} s`,
        );
      }
    } catch (err) {
      if (!stopping) process.stderr.write(`dmesh: ${(err as Error).message}\n`);
      return await stop(1);
    }
    return values.exit ? await stop(0) : undefined;
  };

  const early = await Promise.race([firstImage(), ended]);
  if (early !== undefined) return early;
  say(`serving on ${mesh.url} (gRPC, Connect, gRPC-Web) — Ctrl-C to stop`);
  return await ended;
}

function hasModel(dir: string): boolean {
  if (!existsSync(dir)) return false;
  return readdirSync(dir, { withFileTypes: true }).some(
    (d) => d.isDirectory() && existsSync(join(dir, d.name, "model_index.json")),
  );
}
