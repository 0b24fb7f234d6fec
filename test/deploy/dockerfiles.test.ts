import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { NODE_FLAGS, type ServiceName } from "@dmesh/cli/mesh-launcher";
import { describe, expect, it } from "vitest";
import { expandArgs, isDockerignored, lastArgs, type Stage, stageEnv } from "./dockerfile.js";
import { MESH_SERVICES, REPO_ROOT, readDockerfile } from "./mesh-services.js";

// No container engine runs here: the images are checked as text against the repository they build from.
const dockerignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8");
const ASSEMBLE = "deploy/docker/assemble-workspace.sh";
const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  allowScripts?: Record<string, boolean>;
  engines?: Record<string, string>;
};
/** Whether version a (x.y.z) is at least b (x.y.z). */
const atLeast = (a: string, b: string) => {
  const [x, y] = [a, b].map((v) => v.split(".").map(Number));
  const i = (x ?? []).findIndex((n, k) => n !== y?.[k]);
  return b !== "" && (i < 0 || (x?.[i] ?? 0) > (y?.[i] ?? 0));
};
const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);

describe(".dockerignore", () => {
  it("keeps host installs and build outputs out and everything the build needs in", () => {
    for (const path of ["node_modules", "services/inference/node_modules", "packages/runtime/dist", ".git"]) {
      expect(isDockerignored(path, dockerignore), path).toBe(true);
    }
    for (const path of [
      "package.json",
      "package-lock.json",
      ".npmrc",
      "tsconfig.json",
      "tsconfig.base.json",
      ASSEMBLE,
      "packages/runtime/src/index.ts",
      "services/inference/src/main.ts",
    ]) {
      expect(isDockerignored(path, dockerignore), path).toBe(false);
    }
  });

  it("the CPU images rely on package.json's allowScripts denying onnxruntime-node's CUDA download", () => {
    expect(rootPackage.allowScripts?.["onnxruntime-node"]).toBe(false);
    expect(readFileSync(join(REPO_ROOT, ".npmrc"), "utf8")).toMatch(/^engine-strict=true$/m);
  });

  it("the assembly script is valid sh", () => {
    execFileSync("sh", ["-n", join(REPO_ROOT, ASSEMBLE)]);
  });
});

describe.each(MESH_SERVICES)("services/$name/Dockerfile", (service) => {
  const dockerfile = readDockerfile(service.name);
  const { stages, globalArgs } = dockerfile;
  const stageNames = new Set(stages.map((s) => s.name));
  const baseOf = (stage: Stage) => expandArgs(stage.base, globalArgs);
  // Every stage with an ENTRYPOINT is an image someone runs (the last one is the default target).
  const images = stages.filter((s) => lastArgs(s, "ENTRYPOINT") !== undefined);

  it("has an image as its default (last) stage", () => {
    expect(images).toContain(stages.at(-1));
  });

  it("builds on glibc bases only (onnxruntime-node and sharp ship glibc binaries)", () => {
    for (const stage of stages) {
      const base = baseOf(stage);
      if (stageNames.has(base)) continue;
      expect(base, `stage ${stage.name}`).toMatch(
        /^node:20-bookworm(-slim)?$|^nvidia\/cuda:12\.[\d.]+-\S*ubuntu\d/,
      );
    }
  });

  it("copies only from earlier stages or from sources that exist and reach the build context", () => {
    stages.forEach((stage, index) => {
      for (const copy of stage.instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")) {
        const words = copy.args.split(/\s+/);
        const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
        const paths = words.filter((w) => !w.startsWith("--"));
        if (from !== undefined) {
          expect(
            stages.slice(0, index).map((s) => s.name),
            `${copy.args}`,
          ).toContain(from);
          continue;
        }
        for (const source of paths.slice(0, -1)) {
          expect(existsSync(join(REPO_ROOT, source)), `${source} exists`).toBe(true);
          if (source !== ".")
            expect(isDockerignored(source, dockerignore), `${source} is in the context`).toBe(false);
        }
      }
    });
  });

  it("installs an npm that honours package.json's allowScripts and engines before npm ci", () => {
    const build = stages.find((s) => runs(s).some((r) => /\bnpm ci\b/.test(r)));
    const npm = /npm install --global npm@(\d+\.\d+\.\d+)/.exec(runs(build as Stage).join(" && "))?.[1];
    expect(npm, "the build stage installs a pinned npm").toBeDefined();
    expect(atLeast(npm ?? "", /^>=(\d+\.\d+\.\d+)$/.exec(rootPackage.engines?.npm ?? "")?.[1] ?? "")).toBe(
      true,
    );
  });

  it("installs with npm ci, compiles this service and keeps only its production dependencies", () => {
    const build = stages.find((s) => runs(s).some((r) => r.includes(ASSEMBLE)));
    expect(build, "a stage runs the assembly script").toBeDefined();
    const script = runs(build as Stage).join(" && ");
    expect(script).toMatch(/\bnpm ci\b/);
    expect(script).toMatch(new RegExp(`tsc -b [^&]*services/${service.name}\\b`));
    expect(script).toMatch(new RegExp(`${ASSEMBLE} /out services/${service.name}\\b`));
    for (const image of images) {
      const copies = image.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
      expect(
        copies.some((c) => c.endsWith("/out /app")),
        `${image.name} copies the assembled tree`,
      ).toBe(true);
    }
  });

  it.each(images.map((s) => [s.name, s] as const))(
    "image stage %s: non-root, container-ready env, exposes the service port, runs the service",
    (_name, image) => {
      expect(baseOf(image)).not.toBe("node:20-bookworm"); // the runtime is slim (or CUDA), never the build image
      const user = lastArgs(image, "USER") ?? "";
      expect(user, "USER is numeric so runAsNonRoot can verify it").toMatch(/^\d+(:\d+)?$/);
      expect(Number(user.split(":")[0])).toBeGreaterThan(0);
      expect(lastArgs(image, "EXPOSE")).toBe(String(service.defaultPort));
      const env = stageEnv(image);
      expect(env.get("PORT")).toBe(String(service.defaultPort));
      expect(env.get("HOST"), "listens beyond loopback").toBe("0.0.0.0");
      expect(env.get("NODE_ENV")).toBe("production");
      for (const key of env.keys()) {
        if (key === "NODE_ENV" || key.startsWith("NVIDIA_")) continue; // read by Node / the NVIDIA runtime
        expect(
          Object.values(service.settings).map((s) => s.env),
          `ENV ${key} is a setting`,
        ).toContain(key);
      }
      // The image starts the service with the same Node flags as `dmesh up` and the bench.
      expect(JSON.parse(lastArgs(image, "ENTRYPOINT") ?? "[]")).toEqual([
        "node",
        ...NODE_FLAGS[service.name as ServiceName],
        `services/${service.name}/dist/main.js`,
      ]);
      expect(existsSync(join(REPO_ROOT, `services/${service.name}/src/main.ts`))).toBe(true);
    },
  );
});

describe("the inference CUDA image", () => {
  const { stages, globalArgs } = readDockerfile("inference");
  const cuda = stages.find((s) => s.name === "cuda");
  const require = createRequire(join(REPO_ROOT, "package.json"));

  it("runs on a CUDA 12 + cuDNN runtime base with the CUDA provider first", () => {
    expect(cuda).toBeDefined();
    expect(expandArgs(cuda?.base ?? "", globalArgs)).toMatch(/^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-ubuntu/);
    expect(stageEnv(cuda as Stage).get("EXECUTION_PROVIDERS")).toBe("cuda,cpu");
  });

  it("carries onnxruntime-node's CUDA provider libraries, fetched by the package's own install script", () => {
    const from = (cuda?.instructions ?? [])
      .filter((i) => i.keyword === "COPY" && i.args.endsWith("/out /app"))
      .map((i) => /--from=(\S+)/.exec(i.args)?.[1]);
    const providers = stages.find((s) => s.name === from[0]);
    const script = runs(providers as Stage).join(" && ");
    expect(script).toContain(
      "ONNXRUNTIME_NODE_INSTALL=cuda12 node /out/node_modules/onnxruntime-node/script/install",
    );
    // The installed onnxruntime-node still has that script and a cuda12 manifest for linux/x64.
    const metadata = require("onnxruntime-node/script/install-metadata.js");
    expect(metadata.requirements["linux/x64"]).toContain("cuda12");
    expect(Object.keys(metadata.manifests["linux/x64:cuda12"])).toContain(
      "./libonnxruntime_providers_cuda.so",
    );
  });

  it("gets Node 20 from the same image the CPU stages use", () => {
    const copies = (cuda?.instructions ?? []).filter((i) => i.keyword === "COPY").map((i) => i.args);
    expect(copies).toContain("--from=node /usr/local/bin/node /usr/local/bin/node");
    expect(expandArgs(stages.find((s) => s.name === "node")?.base ?? "", globalArgs)).toBe(
      "node:20-bookworm-slim",
    );
  });
});
