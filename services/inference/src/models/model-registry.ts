import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ModelCache, ModelContractError, type SessionSettings } from "@dmesh/onnx";
import { FailedPreconditionError, NotFoundError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { modelUnloads, observeModelLoad } from "../inference-metrics.js";
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
  private readonly resident: ModelCache<Resident>;
  /** Models whose provider fallback was logged: once per model, however often it is reloaded. */
  private readonly fallbackLogged = new Set<string>();

  constructor(
    private readonly modelsDir: string,
    private readonly defaultModel: string,
    private readonly settings: SessionSettings,
    maxLoaded: number,
    private readonly logger: Logger,
  ) {
    this.resident = new ModelCache({
      capacity: maxLoaded,
      load: (id) => this.loadSuite(id),
      release: async ({ model }, id) => {
        await model.release();
        modelUnloads.inc();
        this.logger.info({ model: id }, "model unloaded");
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

  loadedIds(): string[] {
    return this.resident.keys().filter((id) => this.resident.info(id)?.loaded);
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
