import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pngInfo } from "../support/png-info.js";
import { startTestMesh, type TestMesh } from "../support/test-mesh.js";

/**
 * The clients in examples/, in other languages than ours, run as a reader would run them against a real mesh:
 * the Python one over gRPC with stubs generated from proto/ now, the shell one over Connect JSON with curl.
 * Each must print the session's progress and save a PNG of the size it asked for.
 */
const run = promisify(execFile);
const examples = join(import.meta.dirname, "..", "..", "examples");
const python = "/usr/bin/python3";
const scratch = mkdtempSync(join(tmpdir(), "dmesh-examples-"));

/** Why a client cannot run on this machine, or undefined when it can. */
function missing(command: string, args: string[], env: Record<string, string> = {}): string | undefined {
  try {
    execFileSync(command, args, { stdio: "pipe", timeout: 60_000, env: { ...process.env, ...env } });
    return undefined;
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    return stderr.split("\n").at(-1) || String(err);
  }
}

/** What both clients print and save for a 4-step generation: the session's end, its steps, the PNG asked for. */
function expectSaved(stdout: string, out: string, asked: { width: number; height: number; seed: number }) {
  const { width, height, seed } = asked;
  expect(stdout).toMatch(/^session \S+ SESSION_STATE_COMPLETED$/m);
  expect(stdout).toMatch(/^step 4\/4, workflow \d+%$/m);
  expect(stdout).toContain(`saved ${out} (${width}x${height}, seed ${seed})`);
  const png = pngInfo(readFileSync(out));
  expect([png.width, png.height]).toEqual([width, height]);
  expect(png.text.parameters).toContain(`Seed: ${seed}, Size: ${width}x${height}`);
}

const stubs = join(scratch, "gen");
const pythonMissing =
  missing(python, ["-c", "import grpc, google.protobuf"]) === undefined
    ? missing(join(examples, "python", "generate-stubs.sh"), [stubs], { PYTHON: python })
    : "Debian's python3-grpcio is not installed";
const curlMissing =
  missing("bash", ["-c", "command -v curl && command -v jq"]) && "curl or jq is not installed";

describe.skipIf(pythonMissing && curlMissing)("the example clients against a running mesh", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh();
  });
  afterAll(async () => {
    await mesh?.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  it.skipIf(pythonMissing)(
    `python: generated gRPC stubs submit a txt2img, stream its progress and save the PNG${pythonMissing ? ` (skipped: ${pythonMissing}; .ci/run installs protobuf-compiler-grpc)` : ""}`,
    async () => {
      const out = join(scratch, "python.png");
      const { stdout } = await run(
        python,
        [
          join(examples, "python", "generate_image.py"),
          "a red fox in snow",
          ...["--address", mesh.address("orchestrator"), "--stubs", stubs, "--out", out],
          ...["--steps", "4", "--width", "96", "--height", "64", "--seed", "7"],
        ],
        { timeout: 120_000 },
      );
      expectSaved(stdout, out, { width: 96, height: 64, seed: 7 });
    },
  );

  it.skipIf(curlMissing)(
    `curl: Connect JSON streams submit a txt2img, stream its progress and save the PNG${curlMissing ? ` (skipped: ${curlMissing})` : ""}`,
    async () => {
      const out = join(scratch, "curl.png");
      const { stdout } = await run(
        "bash",
        [join(examples, "curl", "generate.sh"), "a red fox in snow", out],
        {
          timeout: 120_000,
          env: {
            ...process.env,
            DMESH_URL: `http://${mesh.address("orchestrator")}`,
            ...{ STEPS: "4", WIDTH: "64", HEIGHT: "96", SEED: "11" },
          },
        },
      );
      expectSaved(stdout, out, { width: 64, height: 96, seed: 11 });
    },
  );

  it.skipIf(curlMissing)("curl: a unary RPC is one JSON POST, as examples/README.md shows it", async () => {
    const readme = readFileSync(join(examples, "README.md"), "utf8");
    const shown = readme.match(/^curl -s .*\\\n\s+http:\/\/127\.0\.0\.1:50051\/\S+$/m)?.[0];
    expect(shown).toContain("ProcessingService/ListWorkflows");
    const command = (shown ?? "").replace("127.0.0.1:50051", mesh.address("orchestrator"));
    const { stdout } = await run("bash", ["-c", command], { timeout: 30_000 });
    const { workflows } = JSON.parse(stdout) as { workflows: { id: string }[] };
    expect(workflows.map((w) => w.id)).toContain("txt2img");
  });

  it.skipIf(curlMissing)(
    "curl: bad input ends the stream with the Connect error naming the field",
    async () => {
      const failed = await run(
        "bash",
        [join(examples, "curl", "generate.sh"), "x", join(scratch, "bad.png")],
        {
          timeout: 60_000,
          env: { ...process.env, DMESH_URL: `http://${mesh.address("orchestrator")}`, WIDTH: "100" },
        },
      ).catch((err: { code: number; stderr: string }) => err);
      expect(failed).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/^invalid_argument: .*spec\.size\.width/m),
      });
    },
  );
});
