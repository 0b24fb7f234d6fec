import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { FailedPreconditionError, type Logger, NotFoundError } from "@dmesh/runtime";
import { modelUnloads, observeModelLoad } from "../inference-metrics.js";
import { type LoadedModel, loadModel } from "./loaded-model.js";
import { type ModelDirectory, readModelDirectory } from "./model-directory.js";
import { ModelContractError } from "./model-errors.js";
import type { SessionSettings } from "./onnx-component.js";

interface Entry {
  dir: ModelDirectory | undefined;
  /** Why the directory cannot be used, when it cannot. */
  problem: string | undefined;
  path: string;
  loaded: LoadedModel | undefined;
  loading: Promise<LoadedModel> | undefined;
  refs: number;
  lastUsed: number;
  memoryBytes: number;
}

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
  /** Models whose provider fallback was logged: once per model, however often it is reloaded. */
  private readonly fallbackLogged = new Set<string>();

  constructor(
    private readonly modelsDir: string,
    private readonly defaultModel: string,
    private readonly settings: SessionSettings,
    private readonly maxLoaded: number,
    private readonly logger: Logger,
  ) {
    this.scan();
  }

  /** Re-reads the models directory: new directories, and ones that were unusable; loaded models stay loaded. */
  scan(): void {
    if (!existsSync(this.modelsDir)) return;
    for (const name of readdirSync(this.modelsDir, { withFileTypes: true })) {
      if (!name.isDirectory() || this.entries.get(name.name)?.dir) continue;
      const path = join(this.modelsDir, name.name);
      if (!existsSync(join(path, "model_index.json"))) continue;
      const entry: Entry = {
        dir: undefined,
        problem: undefined,
        path,
        loaded: undefined,
        loading: undefined,
        refs: 0,
        lastUsed: 0,
        memoryBytes: 0,
      };
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
    return {
      id: this.resolveId(id),
      dir: entry.dir,
      problem: entry.problem,
      loaded: entry.loaded !== undefined,
      memoryBytes: entry.memoryBytes,
      lastUsed: entry.lastUsed,
      providers: entry.loaded?.providers ?? [],
    };
  }

  loadedIds(): string[] {
    return [...this.entries].filter(([, e]) => e.loaded).map(([id]) => id);
  }

  /**
   * The model, loaded; call `release` when the request is done with it. `field` is the request field that
   * named the model, for the errors (a suite's base or its refiner).
   */
  async acquire(id: string, field = "models.base"): Promise<{ model: LoadedModel; release: () => void }> {
    const entry = this.entry(id, field);
    entry.refs++;
    try {
      const model = await this.ensureLoaded(this.resolveId(id), entry);
      entry.lastUsed = Date.now();
      let released = false;
      return {
        model,
        release: () => {
          if (released) return;
          released = true;
          entry.refs--;
          entry.lastUsed = Date.now();
          void this.evict();
        },
      };
    } catch (err) {
      entry.refs--;
      throw err instanceof ModelContractError ? err.forField(field) : err;
    }
  }

  async load(id: string): Promise<ModelInfo> {
    const { release } = await this.acquire(id, "id");
    release();
    return this.info(id);
  }

  async unload(id: string): Promise<ModelInfo> {
    const entry = this.entry(id, "id");
    if (entry.refs > 0)
      throw new FailedPreconditionError(`model "${id}" is in use by ${entry.refs} request(s)`, "id");
    await this.drop(entry);
    return this.info(id);
  }

  async close(): Promise<void> {
    for (const entry of this.entries.values()) await this.drop(entry);
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

  private ensureLoaded(id: string, entry: Entry): Promise<LoadedModel> {
    if (entry.loaded) return Promise.resolve(entry.loaded);
    entry.loading ??= (async () => {
      const before = process.memoryUsage().rss;
      const started = performance.now();
      try {
        const dir = entry.dir as ModelDirectory;
        const model = await observeModelLoad(id, () => loadModel(dir, this.settings));
        entry.loaded = model;
        entry.memoryBytes = Math.max(0, process.memoryUsage().rss - before);
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
        return model;
      } finally {
        entry.loading = undefined;
      }
    })();
    return entry.loading;
  }

  private async evict(): Promise<void> {
    const loaded = [...this.entries.values()].filter((e) => e.loaded);
    if (loaded.length <= this.maxLoaded) return;
    const idle = loaded.filter((e) => e.refs === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of idle.slice(0, loaded.length - this.maxLoaded)) await this.drop(entry);
  }

  private async drop(entry: Entry): Promise<void> {
    const model = entry.loaded;
    if (!model) return;
    entry.loaded = undefined;
    entry.memoryBytes = 0;
    await model.release();
    modelUnloads.inc();
    this.logger.info({ model: entry.dir?.id }, "model unloaded");
  }
}
