import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TinyModelKind, tinyAdapterDims, tinyAdapterModules } from "@dmesh/tiny-model";
import type { AdapterComponent, AdapterTarget, ModuleWeight } from "../../src/adapters/index.js";

/** The adapter target of the tiny model of `kind`, built from its dims (as the ONNX weight index will). */
export function tinyTarget(kind: TinyModelKind, layersPerBlock = 1): AdapterTarget {
  const components: Partial<Record<AdapterComponent, Map<string, ModuleWeight>>> = {};
  for (const m of tinyAdapterModules(tinyAdapterDims(kind, layersPerBlock))) {
    const map = components[m.component] ?? new Map<string, ModuleWeight>();
    map.set(m.path, { shape: m.shape });
    components[m.component] = map;
  }
  return { components, unetLayersPerBlock: layersPerBlock };
}

/** A target with extra modules added to one component. */
export function withModules(
  target: AdapterTarget,
  component: AdapterComponent,
  extra: Record<string, readonly number[]>,
): AdapterTarget {
  const map = new Map(target.components[component] ?? []);
  for (const [path, shape] of Object.entries(extra)) map.set(path, { shape });
  return { ...target, components: { ...target.components, [component]: map } };
}

export async function tempDir(
  prefix: string,
): Promise<{ path: string; file: (name: string) => string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `dmesh-${prefix}-`));
  return { path, file: (name) => join(path, name), remove: () => rm(path, { recursive: true, force: true }) };
}

/** Open file handles of this process: a refusal must leave none behind. */
export function openFileHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === "FileHandle").length;
}
