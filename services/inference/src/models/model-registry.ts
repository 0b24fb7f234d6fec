import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ModelCache, ModelContractError, type SessionSettings } from "@dmesh/onnx";
import { FailedPreconditionError, NotFoundError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { modelUnloads, observeModelLoad, recordAdapterSetLookup } from "../inference-metrics.js";
import { type LoadedModel, loadModel } from "./loaded-model.js";
import { type ModelDirectory, readModelDirectory } from "./pipeline-directory.js";

interface Entry {
  dir: ModelDirectory | undefined;
  /** Why the directory cannot be used, when it cannot. */
  problem: string | undefined;
  path: string;
  lastUsed: number;
}

/** A loaded suite and the resident memory its load added. */
interface Resident {
  readonly model: LoadedModel;
  readonly memoryBytes: number;
  /** Run after the model is released: a variant lets go of its base here. */
  readonly dispose?: () => void;
}

/** A model derived from a loaded base (its adapter set applied), cached beside the suites. */
export interface ModelVariant {
  /** Tells variants of one base apart. */
  readonly key: string;
  build(
    base: LoadedModel,
    settings: SessionSettings,
  ): Promise<LoadedModel & { readonly patchedBytes?: number }>;
}

/** Separates a base's id from its variant's key in cache keys; ids never hold it. */
const VARIANT = "\u0000";

export interface ModelInfo {
  id: string;
  dir: ModelDirectory | undefined;
  problem: string | undefined;
  loaded: boolean;
  memoryBytes: number;
  lastUsed: number;
  providers: string[];
}

/**
 * The model suites under MODELS_DIR and their lifecycle in memory: loaded on first use (one load per model
 * however many requests ask at once), shared by concurrent requests, and evicted least-recently-used when
 * more than `maxLoaded` are resident and idle.
 */
export class ModelRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly resident: ModelCache<Resident>;
  /** Models whose provider fallback was logged: once per model, however often it is reloaded. */
  private readonly fallbackLogged = new Set<string>();
  /** Builders of variants about to be loaded by the cache, by cache key. */
  private readonly variants = new Map<string, () => Promise<Resident>>();

  constructor(
    private readonly modelsDir: string,
    private readonly defaultModel: string,
    private readonly settings: SessionSettings,
    maxLoaded: number,
    private readonly logger: Logger,
  ) {
    this.resident = new ModelCache({
      capacity: maxLoaded,
      load: (key) => this.variants.get(key)?.() ?? this.loadSuite(key),
      release: async ({ model, dispose }, key) => {
        await model.release();
        dispose?.();
        modelUnloads.inc();
        this.logger.info({ model: key.replace(VARIANT, " + ") }, "model unloaded");
      },
      bytes: (r) => r.memoryBytes,
    });
    this.scan();
  }

  /** Re-reads the models directory: new directories, and ones that were unusable; loaded models stay loaded. */
  scan(): void {
    if (!existsSync(this.modelsDir)) return;
    for (const name of readdirSync(this.modelsDir, { withFileTypes: true })) {
      if (!name.isDirectory() || this.entries.get(name.name)?.dir) continue;
      const path = join(this.modelsDir, name.name);
      if (!existsSync(join(path, "model_index.json"))) continue;
      const entry: Entry = { dir: undefined, problem: undefined, path, lastUsed: 0 };
      try {
        entry.dir = readModelDirectory(name.name, path);
      } catch (err) {
        entry.problem = (err as Error).message;
        if (entry.problem !== this.entries.get(name.name)?.problem) {
          this.logger.warn({ model: name.name, err: entry.problem }, "model directory unusable");
        }
      }
      this.entries.set(name.name, entry);
    }
  }

  get defaultId(): string {
    if (this.defaultModel) return this.defaultModel;
    const first = [...this.entries.entries()]
      .filter(([, e]) => e.dir)
      .map(([id]) => id)
      .sort()[0];
    return first ?? "";
  }

  list(): ModelInfo[] {
    return [...this.entries.keys()].sort().map((id) => this.info(id));
  }

  info(id: string, field = "id"): ModelInfo {
    const entry = this.entry(id, field, false);
    const resolved = this.resolveId(id);
    const resident = this.resident.info(resolved);
    const model = this.resident.peek(resolved)?.model;
    return {
      id: resolved,
      dir: entry.dir,
      problem: entry.problem,
      loaded: model !== undefined,
      memoryBytes: model ? (resident?.bytes ?? 0) : 0,
      lastUsed: entry.lastUsed,
      providers: model?.providers ?? [],
    };
  }

  /** Suites loaded (variants aside). */
  loadedIds(): string[] {
    return this.resident.keys().filter((id) => !id.includes(VARIANT) && this.resident.info(id)?.loaded);
  }

  /**
   * A variant of a model (its adapter set applied), built on first use from the loaded base and cached with
   * the suites, least recently used first under MAX_LOADED_MODELS; it holds its base loaded while cached.
   * A failed build leaves no entry.
   */
  async acquireVariant(
    id: string,
    field: string,
    variant: ModelVariant,
  ): Promise<{ model: LoadedModel; release: () => void }> {
    const entry = this.entry(id, field);
    const key = `${this.resolveId(id)}${VARIANT}${variant.key}`;
    const cached = this.resident.info(key) !== undefined;
    recordAdapterSetLookup(cached);
    if (!cached) {
      this.variants.set(key, async () => {
        const base = await this.acquire(id, field);
        try {
          const before = process.memoryUsage().rss;
          const started = performance.now();
          const model = await variant.build(base.model, this.settings);
          const memoryBytes = Math.max(process.memoryUsage().rss - before, model.patchedBytes ?? 0);
          this.logger.info(
            { model: id, variant: variant.key, ms: Math.round(performance.now() - started), memoryBytes },
            "model variant built",
          );
          return { model, memoryBytes, dispose: base.release };
        } catch (err) {
          base.release();
          throw err;
        }
      });
    }
    try {
      const lease = await this.resident.acquire(key);
      entry.lastUsed = Date.now();
      return { model: lease.value.model, release: lease.release };
    } finally {
      this.variants.delete(key);
    }
  }

  /**
   * The model, loaded; call `release` when the request is done with it. `field` is the request field that
   * named the model, for the errors (a suite's base or its refiner).
   */
  async acquire(id: string, field = "models.base"): Promise<{ model: LoadedModel; release: () => void }> {
    const entry = this.entry(id, field);
    const resolved = this.resolveId(id);
    try {
      const lease = await this.resident.acquire(resolved);
      entry.lastUsed = Date.now();
      return {
        model: lease.value.model,
        release: () => {
          entry.lastUsed = Date.now();
          lease.release();
        },
      };
    } catch (err) {
      throw err instanceof ModelContractError ? err.forField(field) : err;
    }
  }

  async load(id: string): Promise<ModelInfo> {
    const { release } = await this.acquire(id, "id");
    release();
    return this.info(id);
  }

  async unload(id: string): Promise<ModelInfo> {
    this.entry(id, "id");
    const resolved = this.resolveId(id);
    // Idle adapter-set variants hold their base: they go first (ones in use keep it loaded).
    for (const key of this.resident.keys())
      if (key.startsWith(`${resolved}${VARIANT}`)) await this.resident.delete(key);
    const users = this.resident.info(resolved)?.users ?? 0;
    if (users > 0 || !(await this.resident.delete(resolved)))
      throw new FailedPreconditionError(`model "${id}" is in use by ${users} request(s)`, "id");
    return this.info(id);
  }

  async close(): Promise<void> {
    await this.resident.clear();
  }

  private resolveId(id: string): string {
    return id || this.defaultId;
  }

  /** The entry for `id`, looking at the directory again when it is unknown or was unusable (a model copied in later). */
  private entry(id: string, field: string, usable = true): Entry {
    const resolved = this.resolveId(id);
    if (!this.entries.get(resolved)?.dir) this.scan();
    const entry = this.entries.get(resolved);
    if (!entry) {
      const known = [...this.entries.keys()].join(", ") || "none";
      throw new NotFoundError(field, `no model "${resolved}" in ${this.modelsDir} (known: ${known})`);
    }
    if (usable && !entry.dir)
      throw new FailedPreconditionError(entry.problem ?? `model "${resolved}" is unusable`, field);
    return entry;
  }

  private async loadSuite(id: string): Promise<Resident> {
    const dir = this.entries.get(id)?.dir as ModelDirectory;
    const before = process.memoryUsage().rss;
    const started = performance.now();
    const model = await observeModelLoad(id, () => loadModel(dir, this.settings));
    const memoryBytes = Math.max(0, process.memoryUsage().rss - before);
    this.logger.info(
      {
        model: id,
        ms: Math.round(performance.now() - started),
        providers: model.providers,
        family: dir.family,
      },
      "model loaded",
    );
    if (model.fallbacks.length > 0 && !this.fallbackLogged.has(id)) {
      this.fallbackLogged.add(id);
      this.logger.warn(
        {
          model: id,
          wanted: this.settings.executionProviders,
          using: model.providers,
          unavailable: model.fallbacks,
        },
        "execution providers unavailable; fell back",
      );
    }
    return { model, memoryBytes };
  }
}
