import { join } from "node:path";
import {
  createPatchedSession,
  indexWeights,
  modulePatch,
  type OnnxModel,
  type ModuleWeight as OnnxModuleWeight,
  type OnnxSession,
  optionalModelJson,
  type PatchedSession,
  readModuleWeight,
  readOnnxModel,
  type SessionSettings,
  type TensorPatch,
} from "@dmesh/onnx";
import { openSafetensors } from "@dmesh/safetensors";
import type { LoadedModel, TextEncoder } from "../models/loaded-model.js";
import type { AdapterFileRef } from "./adapter-directory.js";
import { AdapterFileError, asAdapterError } from "./adapter-errors.js";
import { embeddingHash, loraHash } from "./adapter-hash.js";
import type { AdapterComponent, AdapterTarget, ComponentModules } from "./adapter-target.js";
import { embeddingVectorsFor, readEmbeddingFile, type VectorSet } from "./embedding-file.js";
import { createEmbeddingMatcher, type EmbeddingMatcher } from "./embedding-matcher.js";
import { loraDeltasOffThread } from "./lora-deltas-off-thread.js";
import { findTokenTable, maskNewIdsForPooling, type TokenTable } from "./token-table.js";

/** One LoRA of a set, its file found. */
export interface LoraUse {
  readonly file: AdapterFileRef;
  readonly unetWeight: number;
  readonly textEncoderWeight: number;
  /** The request field that named it. */
  readonly field: string;
}

/** What one request adapts its base model with. */
export interface AdapterSet {
  readonly loras: readonly LoraUse[];
  /** Embeddings its prompts use, by name. */
  readonly embeddings: readonly AdapterFileRef[];
}

/** The cache key of a set: names, file versions and weights (the order of LoRAs does not change W'). */
export function adapterSetCacheKey(set: AdapterSet): string {
  const loras = set.loras
    .map((l) => `${l.file.name}@${l.file.version}:${l.textEncoderWeight}:${l.unetWeight}`)
    .sort();
  const embeddings = set.embeddings.map((e) => `${e.name}@${e.version}`).sort();
  return JSON.stringify([loras, embeddings]);
}

/** A1111's short hash of each adapter, for infotext. */
export interface AdapterHashes {
  readonly loras: ReadonlyMap<string, string>;
  readonly embeddings: ReadonlyMap<string, string>;
}

/** A base model with a LoRA set merged and embeddings added: a LoadedModel of its own. */
export interface AdaptedModel extends LoadedModel {
  readonly hashes: AdapterHashes;
  /** Bytes of the patched tensors its sessions hold (the base's other weights are shared). */
  readonly patchedBytes: number;
}

/** The base model's ONNX files as adapters read them: parsed and indexed once per loaded base. */
interface ComponentBase {
  readonly onnx: OnnxModel;
  readonly modules: ReadonlyMap<string, OnnxModuleWeight>;
  readonly tokenTable: TokenTable | undefined;
}

class AdapterBase {
  private readonly components = new Map<AdapterComponent, Promise<ComponentBase>>();
  private targetPromise: Promise<AdapterTarget> | undefined;

  constructor(private readonly model: LoadedModel) {}

  names(): AdapterComponent[] {
    const present = this.model.dir.components;
    return (["unet", "text_encoder", "text_encoder_2"] as const).filter((c) => present[c] !== undefined);
  }

  component(name: AdapterComponent): Promise<ComponentBase> {
    let found = this.components.get(name);
    if (found === undefined) {
      found = (async () => {
        const onnx = await readOnnxModel(this.model.dir.components[name] as string, {
          model: this.model.dir.id,
        });
        return { onnx, modules: indexWeights(onnx).modules, tokenTable: findTokenTable(onnx) };
      })();
      found.catch(() => this.components.delete(name));
      this.components.set(name, found);
    }
    return found;
  }

  target(): Promise<AdapterTarget> {
    this.targetPromise ??= (async () => {
      const components: Partial<Record<AdapterComponent, ComponentModules>> = {};
      for (const name of this.names()) {
        const { modules } = await this.component(name);
        const map = new Map<string, { shape: readonly number[] }>();
        for (const [path, weight] of modules) map.set(path, { shape: weight.shape });
        components[name] = map;
      }
      const config = optionalModelJson(join(this.model.dir.path, "unet", "config.json"));
      const layers = Number(config.layers_per_block);
      return { components, unetLayersPerBlock: Number.isInteger(layers) && layers > 0 ? layers : 2 };
    })();
    this.targetPromise.catch(() => {
      this.targetPromise = undefined;
    });
    return this.targetPromise;
  }
}

/** The adapter state of each loaded base: its ONNX files read once, whatever number of sets it serves. */
const bases = new WeakMap<LoadedModel, AdapterBase>();

function baseOf(model: LoadedModel): AdapterBase {
  let base = bases.get(model);
  if (base === undefined) {
    base = new AdapterBase(model);
    bases.set(model, base);
  }
  return base;
}

export interface BuildOptions {
  readonly settings: SessionSettings;
  /** Where patched models too large for memory are written. */
  readonly cacheDir: string;
  readonly signal?: AbortSignal;
}

/** Float32 values of every weight a set changes, by component and initializer. */
type Patches = Map<AdapterComponent, Map<string, TensorPatch>>;

function patchesOf(patches: Patches, component: AdapterComponent): Map<string, TensorPatch> {
  let map = patches.get(component);
  if (map === undefined) {
    map = new Map();
    patches.set(component, map);
  }
  return map;
}

/**
 * W' = W + Σ weight·scale·up·down for every module the set's LoRAs adapt (all checked before any is read;
 * the checks and the arithmetic on a worker thread, the base weights read and patched here).
 */
async function mergeLoras(base: AdapterBase, set: AdapterSet, patches: Patches, signal?: AbortSignal) {
  const hashes = new Map<string, string>();
  if (set.loras.length === 0) return hashes;
  const target = await base.target();
  const requests = set.loras.map((l) => ({
    name: l.file.name,
    path: l.file.path,
    unetWeight: l.unetWeight,
    textEncoderWeight: l.textEncoderWeight,
  }));
  try {
    for await (const delta of loraDeltasOffThread(requests, target)) {
      signal?.throwIfAborted();
      const component = await base.component(delta.component);
      const weight = component.modules.get(delta.module);
      if (weight === undefined)
        throw new RangeError(`${delta.component} module ${delta.module} has no weight`);
      const values = await readModuleWeight(component.onnx, weight);
      for (let j = 0; j < values.length; j++) values[j] = (values[j] as number) + (delta.delta[j] as number);
      patchesOf(patches, delta.component).set(weight.initializer, modulePatch(weight, values));
    }
  } catch (error) {
    // Name the request field that asked for the file at fault.
    if (error instanceof AdapterFileError) {
      const use = set.loras.find((l) => l.file.path === error.file);
      throw use === undefined ? error : error.forField(use.field);
    }
    throw error;
  }
  for (const l of set.loras) hashes.set(l.file.name, await shortLoraHash(l.file));
  return hashes;
}

/** Short hashes by file version: hashing reads the whole file, once. */
const loraHashes = new Map<string, string>();

async function shortLoraHash(ref: AdapterFileRef): Promise<string> {
  const key = `${ref.path}@${ref.version}`;
  let hash = loraHashes.get(key);
  if (hash === undefined) {
    const file = await asAdapterError(() => openSafetensors(ref.path));
    try {
      hash = (await loraHash(file)).shortHash;
    } finally {
      await file.close();
    }
    loraHashes.set(key, hash);
  }
  return hash;
}

/** The new token ids each embedding's name stands for, and the rows they add to each text encoder. */
interface EmbeddingRows {
  readonly matcher: EmbeddingMatcher<readonly number[]> | undefined;
  readonly vocabulary: Map<AdapterComponent, number>;
  readonly hashes: Map<string, string>;
}

async function addEmbeddings(
  base: AdapterBase,
  model: LoadedModel,
  set: AdapterSet,
  patches: Patches,
): Promise<EmbeddingRows> {
  const hashes = new Map<string, string>();
  const vocabulary = new Map<AdapterComponent, number>();
  if (set.embeddings.length === 0) return { matcher: undefined, vocabulary, hashes };
  const encoders = (["text_encoder", "text_encoder_2"] as const).filter(
    (c) => model.dir.components[c] !== undefined,
  );
  const tables = new Map<AdapterComponent, { component: ComponentBase; table: TokenTable }>();
  const widths: Partial<Record<AdapterComponent, number>> = {};
  for (const name of encoders) {
    const component = await base.component(name);
    const table = component.tokenTable;
    if (table === undefined) {
      throw new AdapterFileError(
        set.embeddings[0]?.path ?? "",
        `cannot be added: ${name} has no token-embedding table that input_ids index`,
      );
    }
    tables.set(name, { component, table });
    widths[name] = table.width;
  }
  // One id range for every encoder, past the largest vocabulary: the first tokenizer's ids feed both.
  const firstNew = Math.max(...[...tables.values()].map((t) => t.table.rows));
  const rows = new Map<AdapterComponent, VectorSet[]>();
  const entries: { ids: readonly number[]; value: readonly number[] }[] = [];
  const tokenizer = model.textEncoders[0]?.tokenizer;
  let next = firstNew;
  for (const ref of set.embeddings) {
    const file = await readEmbeddingFile(ref.path);
    const vectors = embeddingVectorsFor(file, widths);
    const count = file.vectorCount;
    for (const name of encoders) {
      const own = vectors[name as "text_encoder" | "text_encoder_2"];
      const list = rows.get(name) ?? [];
      // An encoder the file has no vectors for (the refiner's missing CLIP-L) gets zero rows.
      list.push(
        own ?? {
          count,
          width: widths[name] as number,
          data: new Float32Array(count * (widths[name] as number)),
        },
      );
      rows.set(name, list);
    }
    const ids = Array.from({ length: count }, (_, i) => next + i);
    next += count;
    if (tokenizer !== undefined) entries.push({ ids: tokenizer.encode(ref.name), value: ids });
    hashes.set(ref.name, (await embeddingHash(ref.path)).shortHash);
  }
  for (const [name, { component, table }] of tables) {
    const stored = await component.onnx.readFloat32(table.initializer);
    const grown = new Float32Array(next * table.width);
    grown.set(stored.subarray(0, table.rows * table.width));
    let offset = firstNew * table.width;
    for (const vectors of rows.get(name) ?? []) {
      grown.set(vectors.data, offset);
      offset += vectors.data.length;
    }
    patchesOf(patches, name).set(table.initializer, { data: grown, dims: [next, table.width] });
    vocabulary.set(name, table.rows);
  }
  return { matcher: createEmbeddingMatcher(entries), vocabulary, hashes };
}

/**
 * Builds the sessions of `model` with `set` applied: LoRAs merged into the UNet and text encoders
 * (W' = W + weight·alpha/rank·up·down), embeddings as new rows of the text encoders' token tables. Every
 * file is checked before any weight is read; a refusal (FAILED_PRECONDITION naming the file and key)
 * leaves nothing open. Components the set does not change keep the base's sessions, so weight 0 runs
 * exactly the base model. The base's ONNX files are parsed and its weights read once per loaded base.
 */
export async function buildAdaptedModel(
  model: LoadedModel,
  set: AdapterSet,
  options: BuildOptions,
): Promise<AdaptedModel> {
  const base = baseOf(model);
  const patches: Patches = new Map();
  const loraHashes = await mergeLoras(base, set, patches, options.signal);
  const embeddings = await addEmbeddings(base, model, set, patches);
  options.signal?.throwIfAborted();
  const opened: PatchedSession[] = [];
  try {
    const sessionFor = async (name: AdapterComponent, current: OnnxSession): Promise<OnnxSession> => {
      const changes = patches.get(name);
      const vocabulary = embeddings.vocabulary.get(name);
      if (changes === undefined || changes.size === 0) return current;
      const { onnx } = await base.component(name);
      const patched = await createPatchedSession(onnx, changes, {
        name,
        settings: { ...options.settings, executionProviders: model.providers },
        cacheDir: options.cacheDir,
        ...(vocabulary === undefined ? {} : { transformGraph: maskNewIdsForPooling(vocabulary) }),
      });
      opened.push(patched);
      return patched.session;
    };
    const textEncoders: TextEncoder[] = [];
    for (const encoder of model.textEncoders) {
      const name = encoder.component.name as AdapterComponent;
      textEncoders.push({ ...encoder, component: await sessionFor(name, encoder.component) });
    }
    const unet = await sessionFor("unet", model.unet);
    return {
      ...model,
      textEncoders,
      unet,
      ...(embeddings.matcher === undefined ? {} : { embeddings: embeddings.matcher }),
      hashes: { loras: loraHashes, embeddings: embeddings.hashes },
      patchedBytes: opened.reduce((n, p) => n + p.patchedBytes, 0),
      // The base's sessions belong to the base: only the patched ones are this model's to release.
      release: async () => {
        await Promise.all(opened.map((p) => p.release()));
      },
    };
  } catch (error) {
    await Promise.all(opened.map((p) => p.release().catch(() => {})));
    throw error;
  }
}
