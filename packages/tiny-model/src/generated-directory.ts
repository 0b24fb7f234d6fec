import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { GeneratedContents, ModelSignature } from "./generated-files.js";

// Writes a generated model directory and the manifest that proves it complete. The manifest is written
// last and removed first, so a directory interrupted mid-write is never taken for a complete one.

export const MANIFEST_FILE = "dmesh-tiny-model.json";
const GENERATOR = "@dmesh/tiny-model";

export interface ManifestFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** What a generator wrote: what it was asked for, the dims it chose, each model's I/O, each file's hash. */
export interface GeneratedModelManifest<TOptions, TDims> {
  readonly format: 1;
  readonly generator: typeof GENERATOR;
  /** Which generator: "diffusion-pipeline", "upscaler", "safety-classifier". */
  readonly artifact: string;
  readonly options: TOptions;
  readonly dims: TDims;
  readonly models: Readonly<Record<string, ModelSignature>>;
  readonly files: readonly ManifestFile[];
}

/** The directory cannot be written as asked (it holds something else); `field` is "dir". */
export class ModelDirectoryError extends Error {
  readonly field = "dir";
  constructor(message: string) {
    super(message);
    this.name = "ModelDirectoryError";
  }
}

const sha256 = (content: Uint8Array | string): string => createHash("sha256").update(content).digest("hex");

export async function readManifest(
  dir: string,
): Promise<GeneratedModelManifest<unknown, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), "utf8");
  } catch {
    return undefined;
  }
  try {
    const manifest = JSON.parse(text) as GeneratedModelManifest<unknown, unknown>;
    return manifest.generator === GENERATOR && Array.isArray(manifest.files) ? manifest : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The manifest of `dir` if it holds a complete `artifact` generated with exactly `options`: every listed
 * file present with its recorded hash.
 */
export async function findCompleteModel<TOptions, TDims>(
  dir: string,
  artifact: string,
  options: TOptions,
): Promise<GeneratedModelManifest<TOptions, TDims> | undefined> {
  const manifest = await readManifest(dir);
  if (manifest === undefined || manifest.artifact !== artifact) return undefined;
  if (JSON.stringify(manifest.options) !== JSON.stringify(options)) return undefined;
  for (const file of manifest.files) {
    try {
      if (sha256(await readFile(join(dir, file.path))) !== file.sha256) return undefined;
    } catch {
      return undefined;
    }
  }
  return manifest as GeneratedModelManifest<TOptions, TDims>;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch {
    return true;
  }
}

async function writeAtomically(path: string, content: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

export interface WriteModelDirectoryOptions {
  /** Write into a non-empty directory that holds no manifest of ours (it may hold someone's real model). */
  readonly force?: boolean;
}

/**
 * Writes `contents` into `dir` with a manifest. Files a previous generation listed and this one does not
 * (e.g. text_encoder/ after switching to the refiner) are removed; nothing else is touched.
 */
export async function writeModelDirectory<TOptions, TDims>(
  dir: string,
  artifact: string,
  options: TOptions,
  dims: TDims,
  contents: GeneratedContents,
  { force = false }: WriteModelDirectoryOptions = {},
): Promise<GeneratedModelManifest<TOptions, TDims>> {
  const previous = await readManifest(dir);
  if (previous === undefined && !force && !(await isEmptyOrMissing(dir))) {
    throw new ModelDirectoryError(
      `${dir} is not empty and holds no ${MANIFEST_FILE}; refusing to overwrite it`,
    );
  }
  await mkdir(dir, { recursive: true });
  await rm(join(dir, MANIFEST_FILE), { force: true });
  const paths = new Set(contents.files.map((f) => f.path));
  for (const stale of previous?.files ?? []) {
    if (paths.has(stale.path)) continue;
    await rm(join(dir, stale.path), { force: true });
    // Drop the folder too once empty: loaders take a present text_encoder/ for a component.
    await rmdir(dirname(join(dir, stale.path))).catch(() => undefined);
  }
  const files: ManifestFile[] = [];
  for (const file of contents.files) {
    await writeAtomically(join(dir, file.path), file.content);
    const bytes =
      typeof file.content === "string" ? Buffer.byteLength(file.content) : file.content.byteLength;
    files.push({ path: file.path, bytes, sha256: sha256(file.content) });
  }
  const manifest: GeneratedModelManifest<TOptions, TDims> = {
    format: 1,
    generator: GENERATOR,
    artifact,
    options,
    dims,
    models: contents.models,
    files,
  };
  await writeAtomically(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Runs `write` unless `dir` already holds a complete `artifact` made with `options` (or `force` is set). */
export async function ensureModelDirectory<TOptions, TDims>(
  dir: string,
  artifact: string,
  options: TOptions,
  write: () => Promise<GeneratedModelManifest<TOptions, TDims>>,
  force = false,
): Promise<{ manifest: GeneratedModelManifest<TOptions, TDims>; written: boolean }> {
  if (!force) {
    const existing = await findCompleteModel<TOptions, TDims>(dir, artifact, options);
    if (existing !== undefined) return { manifest: existing, written: false };
  }
  return { manifest: await write(), written: true };
}
