import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePortRun } from "../support/free-ports.js";
import { type OutputProcess, startOutputProcess } from "../support/output-process.js";
import { consoleBlocks, matchShown, type ShownCommand } from "./readme-console.js";

/**
 * Every command in the README's console blocks, run as a reader would run it (bash, `npx dmesh`, `npm start`,
 * `curl`), in README order, against the mesh that the README's own `npm start` serves. Each must exit 0,
 * print lines of the shape the README shows under it, and leave the files it names (`--out`, printed
 * `.png` paths).
 *
 * A README command needs one line below: how it runs here, or why it cannot. The values a line scales down
 * (image sizes, steps) keep the command's shape and keep the suite fast on a CPU.
 */
interface Plan {
  /** Why it cannot run in CI; it is then listed as a skipped test with this reason. */
  readonly notHere?: string;
  /** [as the README has it, as it runs here]: values scaled down. */
  readonly scale?: readonly (readonly [string, string])[];
  /** Checks beyond the exit status, the shown output's shape and the files. */
  readonly check?: (run: CommandRun) => void;
}

interface CommandRun {
  readonly shown: ShownCommand;
  readonly output: string;
}

const PLANS: Record<string, Plan> = {
  // npm ci made this checkout before the suite; the first image is 64x64 in 4 steps instead of 512x512 in 20.
  "npm ci && npm start": {
    scale: [["npm ci && npm start", "npm start -- --width 64 --height 64 --steps 4"]],
  },
  "npm ci && npm test": { notHere: "it runs the whole suite, this test included" },
  'npx dmesh generate "a red fox in snow" --seed 7 --steps 20 --width 512 --height 512 --out fox.png': {
    scale: [["--steps 20 --width 512 --height 512", "--steps 4 --width 64 --height 64"]],
  },
  // ControlNet: the tiny residual model and ControlNet land in the mesh's MODELS_DIR, found when first asked for.
  "npx dmesh-tiny-model .dmesh/models/tiny-sdxl-cn --control-residuals": {},
  "npx dmesh-tiny-model .dmesh/models/controlnet/tiny-edges --artifact controlnet": {},
  'npx dmesh generate "a red fox in snow" --model tiny-sdxl-cn --seed 7 --steps 20 --width 512 --height 512 --control tiny-edges:fox.png:0.8 --control-preprocess canny --out fox-edges.png':
    {
      scale: [["--steps 20 --width 512 --height 512", "--steps 4 --width 64 --height 64"]],
    },
  "npx dmesh status": {
    check: ({ output }) => {
      expect(output).toMatch(/^inference\s+\S+\s+SERVING\s/m);
      expect(output).toMatch(/^inference\s+\d+\s+0$/m); // its restarts, from the `npm start` above
    },
  },
  "npx dmesh workflows": {
    check: ({ shown, output }) => {
      for (const name of shown.comment.split(", ")) expect(output).toMatch(new RegExp(`^${name}\\b`, "m"));
    },
  },
  'npx dmesh batch "a castle" --seeds 1,2,3 --guidances 5,7 --steps 8 --width 256 --height 256': {
    scale: [["--width 256 --height 256", "--width 64 --height 64"]],
  },
  // 200 steps stay, so that the pause lands mid-run; the default 512x512 becomes 256x256.
  'id=$(npx dmesh generate "a slow one" --steps 200 --detach)': {
    scale: [["--steps 200", "--steps 200 --width 256 --height 256"]],
  },
  // LoRAs and embeddings: the tiny model's demo files, then a generation and a batch over a LoRA's weight.
  "npx dmesh-tiny-model .dmesh/models/loras --artifact lora --layout kohya-sdxl --name ink": {},
  "npx dmesh-tiny-model .dmesh/models/embeddings --artifact embedding --name shiny": {},
  'npx dmesh generate "a shiny red fox in snow" --lora ink:-0.5 --seed 7 --out fox-shiny.png': {
    scale: [["--seed 7", "--seed 7 --steps 4 --width 64 --height 64"]],
    check: ({ output }) => expect(output).not.toMatch(/failed/),
  },
  'npx dmesh batch "a red fox" --lora-weights ink=0,0.5,1 --steps 8 --width 256 --height 256': {
    scale: [["--steps 8 --width 256 --height 256", "--steps 4 --width 64 --height 64"]],
  },
  "npx dmesh pause $id": {},
  "npx dmesh resume $id": {},
  "npx dmesh watch $id": {},
  "npx dmesh events --kinds replica --count 2": {
    check: ({ output }) => {
      expect(output).toMatch(/REPLICA_UP\s+inference /);
      expect(output).toMatch(/REPLICA_UP\s+postprocess /);
    },
  },
  // Into the models directory of the README's own `npm start` (its --data is this test's .dmesh).
  "npx dmesh-tiny-model .dmesh/models/loras --artifact lora --layout kohya-sdxl": {},
  "npx dmesh models": {
    check: ({ output }) => {
      expect(output).toMatch(/^tiny-sdxl\s+model\s+sdxl\s+-\s/m);
      expect(output).toMatch(/^tiny-kohya-sdxl\s+lora\s+sdxl\s+[0-9a-f]{12}\s/m);
    },
  },
  "curl -s -H 'content-type: application/json' -d '{}' http://127.0.0.1:50051/dmesh.processing.v1.ProcessingService/ListWorkflows":
    {
      check: ({ output }) => {
        const body = JSON.parse(output) as { workflows: { id: string }[] };
        expect(body.workflows.map((w) => w.id)).toContain("txt2img");
      },
    },
  // Workflows as data: the example file from the checkout (the commands run in a directory inside it).
  "npx dmesh workflow create examples/workflows/hires-sharpen.yaml": {
    scale: [["examples/", "../../examples/"]],
  },
  'npx dmesh generate "a lighthouse at dusk" --workflow hires-sharpen --input scale=2 --seed 3 --steps 12 --width 256 --height 256 --out lighthouse.webp':
    {
      scale: [["--steps 12 --width 256 --height 256", "--steps 4 --width 64 --height 64"]],
    },
  "npx dmesh workflow show hires-sharpen --width 256 --height 256 --steps 12": {
    scale: [["--width 256 --height 256 --steps 12", "--width 64 --height 64 --steps 4"]],
  },
  // Keys, TLS and CORS: a key and its file are made here; the meshes they need run in test/door.
  "key=dmesh_acme_$(openssl rand -hex 16)": {},
  'echo "acme $(printf %s "$key" | sha256sum | cut -d\' \' -f1)" >> api-keys.txt': {},
  'API_KEYS_FILE=api-keys.txt CORS_ORIGINS=https://app.example.com DMESH_API_KEY=$key npx dmesh up --base-port 51161 --seed 42 --steps 8 --width 256 --height 256 "a cat"':
    {
      notHere:
        "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
    },
  "npx dmesh sessions --url http://127.0.0.1:51161": {
    notHere:
      "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
  },
  "npx dmesh status --url http://127.0.0.1:51161 --api-key wrong": {
    notHere:
      "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
  },
  "npx dmesh sessions --url http://127.0.0.1:51161 --api-key $key": {
    notHere:
      "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
  },
  "curl -s -H 'content-type: application/json' -d '{}' http://127.0.0.1:51161/dmesh.processing.v1.ProcessingService/ListSessions":
    {
      notHere:
        "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
    },
  "curl -si -X OPTIONS http://127.0.0.1:51161/dmesh.processing.v1.ProcessingService/ListSessions -H 'origin: https://app.example.com' -H 'access-control-request-method: POST'":
    {
      notHere:
        "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
    },
  "curl -si -X OPTIONS http://127.0.0.1:51161/dmesh.processing.v1.ProcessingService/ListSessions -H 'origin: https://evil.example.net' -H 'access-control-request-method: POST' | head -1":
    {
      notHere:
        "needs a second mesh started with API keys and CORS on its own ports; test/door/tenants.test.ts runs keys, tenants and CORS over real processes",
    },
  'mesh="TLS_CERT_FILE=mesh.crt TLS_KEY_FILE=mesh.key"': {},
  "env $mesh TLS_CLIENT_CA_FILE=ca.crt PORT=51172 node services/postprocess/dist/main.js": {
    notHere:
      "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
  },
  "env $mesh TLS_CLIENT_CA_FILE=ca.crt PORT=51171 MODELS_DIR=.dmesh/models node services/inference/dist/main.js":
    {
      notHere:
        "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
    },
  "env $mesh TLS_CA_FILE=ca.crt TLS_CLIENT_CERT_FILE=mesh.crt TLS_CLIENT_KEY_FILE=mesh.key TLS_SERVER_NAME=dmesh-internal PORT=51170 INFERENCE_URLS=127.0.0.1:51171 POSTPROCESS_URLS=127.0.0.1:51172 node services/orchestrator/dist/main.js":
    {
      notHere:
        "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
    },
  'NODE_EXTRA_CA_CERTS=ca.crt npx dmesh generate "a cat" --steps 4 --width 64 --height 64 --url https://localhost:51170':
    {
      notHere:
        "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
    },
  "curl -s --cacert ca.crt -H 'content-type: application/json' -d '{\"service\":\"\"}' https://localhost:51170/grpc.health.v1.Health/Check":
    {
      notHere:
        "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
    },
  "curl -s --http2 --cacert ca.crt https://localhost:51171/grpc.health.v1.Health/Check -d ''; echo $?": {
    notHere:
      "needs certificates and services started with TLS by hand; test/door/tls.test.ts makes its certificates with openssl and runs this mesh",
  },
  "optimum-cli export onnx --model stabilityai/stable-diffusion-xl-base-1.0 models/sdxl-base": {
    notHere: "needs Python's optimum and the Hugging Face hub",
  },
  'MODELS_DIR=models npm start -- --model sdxl-base --width 1024 --height 1024 "an astronaut riding a horse"':
    {
      notHere: "needs a real SDXL export (the command above)",
    },
  "for s in orchestrator inference postprocess device; do docker build -f services/$s/Dockerfile -t dmesh/$s:dev .; done":
    { notHere: "no container engine in CI (test/deploy checks the Dockerfiles as text)" },
  "kubectl apply -k deploy/overlays/dev": { notHere: "no cluster in CI (test/deploy renders the overlays)" },
  "kubectl -n dmesh-dev port-forward svc/orchestrator 50051:50051 &": { notHere: "no cluster in CI" },
  // Through the port-forward above in the README; here against the local mesh, 64x64 in 4 steps.
  'npx dmesh generate "a cat" --url http://localhost:50051': {
    scale: [['"a cat"', '"a cat" --width 64 --height 64 --steps 4']],
  },
};

const REPO_ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const BLOCKS = consoleBlocks(README);
const SHOWN = BLOCKS.flat();
/** The command that starts the mesh the others use; it keeps serving until the end. */
const SERVES = "npm ci && npm start";

/** The README's command as it runs here: scaled down, on this test's ports and directory. */
function rewrite(shown: ShownCommand, url: string, work: string, basePort: number): string {
  let command = shown.command;
  for (const [from, to] of PLANS[command]?.scale ?? []) command = command.replace(from, to);
  return command
    .replace(/http:\/\/(127\.0\.0\.1|localhost):50051/g, url)
    .replace(/\bnpx dmesh (\S+)(?![^\n]*--url)/g, `npx dmesh $1 --url ${url}`)
    .replace(/\bnpm start --(?= )/g, `npm start -- --base-port ${basePort} --data ${work}/.dmesh`);
}

/** The shown lines appear in the output in order, and every file the command names exists. */
function expectAsShown(run: CommandRun, command: string, work: string): void {
  const result = matchShown(run.shown.shownOutput, run.output);
  if ("missing" in result)
    throw new Error(
      `"${run.shown.command}" did not print a line like\n  ${result.missing}\nit printed:\n${run.output}`,
    );
  const out = /--out (\S+)/.exec(command)?.[1];
  const named = [...(out ? [out] : []), ...(run.output.match(/\S+\.png\b/g) ?? [])];
  for (const file of named) {
    const path = isAbsolute(file) ? file : join(work, file);
    expect(existsSync(path) && statSync(path).size > 0, `${file} exists`).toBe(true);
  }
  PLANS[run.shown.command]?.check?.(run);
}

/** Runs commands in one bash, one after another as a reader types them, each bounded by the whole's time. */
function runInBash(
  commands: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ output: string; code: number }[]> {
  const script = [
    "exec 2>&1",
    ...commands.flatMap((command, i) => [
      `printf '\\n@@begin ${i}\\n'`,
      command,
      `printf '\\n@@end ${i} %d\\n' "$?"`,
    ]),
  ].join("\n");
  return new Promise((resolve, reject) => {
    const bash = spawn("bash", ["-c", script], {
      cwd,
      env: { ...process.env, npm_config_offline: "true" },
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    });
    let text = "";
    bash.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    const timer = setTimeout(() => process.kill(-(bash.pid ?? 0), "SIGKILL"), timeoutMs);
    bash.once("exit", () => {
      clearTimeout(timer);
      const runs = commands.map((_, i) => {
        const part = new RegExp(`\\n@@begin ${i}\\n([\\s\\S]*?)\\n@@end ${i} (\\d+)\\n`).exec(text);
        return { output: part?.[1] ?? "", code: part ? Number(part[2]) : -1 };
      });
      if (runs.some((r) => r.code === -1)) reject(new Error(`bash ended early or timed out:\n${text}`));
      else resolve(runs);
    });
  });
}

describe("every command the README shows", () => {
  let work: string;
  let url: string;
  let basePort: number;
  let mesh: OutputProcess;

  beforeAll(async () => {
    mkdirSync(join(REPO_ROOT, ".dmesh"), { recursive: true });
    // Inside the checkout, as a reader's shell is: npx finds the linked `dmesh` from here.
    work = mkdtempSync(join(REPO_ROOT, ".dmesh", "readme-"));
    basePort = await freePortRun(4);
    url = `http://127.0.0.1:${basePort}`;
    const serves = SHOWN.find((s) => s.command === SERVES);
    if (!serves) throw new Error(`the README no longer shows "${SERVES}"`);
    mesh = startOutputProcess("bash", ["-c", rewrite(serves, url, work, basePort)], {
      cwd: work,
      env: { npm_config_offline: "true" },
    });
    await mesh.waitForOutput(/dmesh: serving on /, 240_000);
  }, 300_000);

  afterAll(async () => {
    if (mesh?.child.exitCode === null) {
      mesh.signalGroup("SIGKILL");
      await mesh.exited;
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("has a plan for each command, and each plan a command", () => {
    const commands = SHOWN.map((s) => s.command);
    expect(
      commands.filter((c) => !(c in PLANS)),
      "add a line to PLANS for each of these",
    ).toEqual([]);
    expect(
      Object.keys(PLANS).filter((c) => !commands.includes(c)),
      "the README no longer shows these",
    ).toEqual([]);
  });

  it(`${SERVES}: starts the mesh and prints what the README shows`, () => {
    const serves = SHOWN.find((s) => s.command === SERVES) as ShownCommand;
    expectAsShown({ shown: serves, output: mesh.output() }, rewrite(serves, url, work, basePort), work);
  });

  for (const shown of SHOWN.filter((s) => PLANS[s.command]?.notHere))
    it.skip(`${shown.command}: not run here, ${PLANS[shown.command]?.notHere}`, () => {});

  BLOCKS.forEach((block, b) => {
    const runnable = block.filter((s) => s.command !== SERVES && !PLANS[s.command]?.notHere);
    if (runnable.length === 0) return;
    it(`console block ${b + 1}: ${runnable.map((s) => s.command.split(" ").slice(0, 3).join(" ")).join("; ")}`, async () => {
      const commands = runnable.map((s) => rewrite(s, url, work, basePort));
      const runs = await runInBash(commands, work, 400_000);
      runs.forEach((run, i) => {
        const shown = runnable[i] as ShownCommand;
        expect(run.code, `"${commands[i]}" exited ${run.code}:\n${run.output}`).toBe(0);
        expectAsShown({ shown, output: run.output }, commands[i] ?? "", work);
      });
    }, 420_000);
  });

  it("Ctrl-C stops the mesh that npm start serves, every service with it", async () => {
    const state = JSON.parse(readFileSync(join(work, ".dmesh", "services.json"), "utf8")) as {
      services: Record<string, { pid: number }>;
    };
    const pids = Object.values(state.services).map((s) => s.pid);
    mesh.signalGroup("SIGINT");
    await mesh.exited;
    expect(mesh.output()).toMatch(/dmesh: stopping the mesh\n/);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 60_000);
});
