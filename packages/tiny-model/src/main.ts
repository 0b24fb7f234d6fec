#!/usr/bin/env node
import { resolve } from "node:path";
import { isAdapterCommand, runAdapterCommand } from "./adapters/index.js";
import { type Artifact, type CliRequest, parseCliArgs, USAGE, UsageError } from "./cli-args.js";
import {
  ensureModelDirectory,
  type GeneratedModelManifest,
  ModelDirectoryError,
} from "./generated-directory.js";
import { TinyModelOptionError } from "./options.js";
import {
  CONTROLNET_ARTIFACT,
  resolveTinyControlNetOptions,
  type TinyControlNetOptions,
  writeTinyControlNet,
} from "./write-tiny-controlnet.js";
import { ensureTinyModel } from "./write-tiny-model.js";
import {
  resolveTinySafetyClassifierOptions,
  SAFETY_CLASSIFIER_ARTIFACT,
  writeTinySafetyClassifier,
} from "./write-tiny-safety-classifier.js";
import { resolveTinyUpscalerOptions, UPSCALER_ARTIFACT, writeTinyUpscaler } from "./write-tiny-upscaler.js";
import { resolveTinyVaeOptions, VAE_ARTIFACT, writeTinyVae } from "./write-tiny-vae.js";

type Outcome = { manifest: GeneratedModelManifest<unknown, unknown>; written: boolean; what: string };

async function generate(request: CliRequest, dir: string): Promise<Outcome> {
  const { force } = request;
  const seed = request.diffusion.seed;
  const artifact: Artifact = request.artifact;
  if (artifact === UPSCALER_ARTIFACT) {
    const options = resolveTinyUpscalerOptions({ seed, scale: request.scale as 2 | 4 | undefined });
    const write = () => writeTinyUpscaler(dir, options, { force });
    const done = await ensureModelDirectory(dir, artifact, options, write, force);
    return { ...done, what: `tiny ×${options.scale} upscaler (seed ${options.seed})` };
  }
  if (artifact === SAFETY_CLASSIFIER_ARTIFACT) {
    const options = resolveTinySafetyClassifierOptions({ seed });
    const write = () => writeTinySafetyClassifier(dir, options, { force });
    const done = await ensureModelDirectory(dir, artifact, options, write, force);
    return { ...done, what: `tiny safety classifier (seed ${options.seed})` };
  }
  if (artifact === CONTROLNET_ARTIFACT) {
    const { kind, layersPerBlock } = request.diffusion;
    const options = resolveTinyControlNetOptions({
      seed,
      kind: kind as TinyControlNetOptions["kind"] | undefined,
      layersPerBlock,
    });
    const write = () => writeTinyControlNet(dir, options, { force });
    const done = await ensureModelDirectory(dir, artifact, options, write, force);
    return { ...done, what: `tiny ${options.kind} ControlNet (seed ${options.seed})` };
  }
  if (artifact === VAE_ARTIFACT) {
    const kind = request.diffusion.kind === "sd15" || request.diffusion.kind === "sd2" ? "sd15" : "sdxl";
    const options = resolveTinyVaeOptions({ kind, seed });
    const write = () => writeTinyVae(dir, options, { force });
    const done = await ensureModelDirectory(dir, artifact, options, write, force);
    return { ...done, what: `tiny ${kind} VAE suite (seed ${options.seed})` };
  }
  const done = await ensureTinyModel(dir, request.diffusion, { force });
  const o = done.manifest.options;
  return { ...done, what: `tiny ${o.kind} model (seed ${o.seed})` };
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

async function main(argv: readonly string[]): Promise<number> {
  if (isAdapterCommand(argv)) {
    console.log(await runAdapterCommand(argv));
    return 0;
  }
  const request = parseCliArgs(argv);
  if (request.help) {
    console.log(USAGE);
    return 0;
  }
  const dir = resolve(request.dir);
  const started = performance.now();
  const { manifest, written, what } = await generate(request, dir);
  if (!written) {
    console.log(`skipped: ${dir} already holds a complete ${what}; --force rewrites it`);
    return 0;
  }
  const total = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
  const ms = Math.round(performance.now() - started);
  console.log(`wrote ${what} to ${dir} in ${ms} ms: ${manifest.files.length} files, ${formatBytes(total)}`);
  const width = Math.max(...manifest.files.map((f) => f.path.length));
  for (const f of manifest.files) {
    console.log(
      `  ${f.path.padEnd(width)}  ${formatBytes(f.bytes).padStart(10)}  sha256 ${f.sha256.slice(0, 16)}`,
    );
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`dmesh-tiny-model: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (error instanceof TinyModelOptionError || error instanceof ModelDirectoryError) {
      console.error(`dmesh-tiny-model: ${error.message}`);
      process.exitCode = 2;
    } else {
      console.error("dmesh-tiny-model: failed:", error);
      process.exitCode = 1;
    }
  },
);
