import { checkIntegerInRange } from "../validation/check-number.js";

export interface ModelCacheOptions<T> {
  /** Models kept loaded; the least recently used beyond it are released once idle. */
  readonly capacity: number;
  readonly load: (name: string) => Promise<T>;
  readonly release: (model: T) => Promise<void>;
}

interface Entry<T> {
  readonly loading: Promise<T>;
  users: number;
  evicted: boolean;
}

/**
 * Loaded models by name, least recently used evicted first. A model in use is never released under its
 * user: an evicted entry is released when its last user finishes. Concurrent requests for a model that is
 * still loading share the one load; a failed load is not kept, so the next request tries again.
 */
export class ModelCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly options: ModelCacheOptions<T>) {
    checkIntegerInRange("capacity", options.capacity, 1, 1024);
  }

  /** Names of the models loaded or loading, least recently used first. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  async use<R>(name: string, work: (model: T) => Promise<R>): Promise<R> {
    const entry = this.entryFor(name);
    entry.users++;
    try {
      return await work(await entry.loading);
    } finally {
      entry.users--;
      if (entry.evicted && entry.users === 0) await this.releaseEntry(entry);
    }
  }

  /** Releases every idle model; models in use are released when their users finish. */
  async clear(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((entry) => this.evict(entry)));
  }

  private entryFor(name: string): Entry<T> {
    const found = this.entries.get(name);
    if (found) {
      // Most recently used last.
      this.entries.delete(name);
      this.entries.set(name, found);
      return found;
    }
    const entry: Entry<T> = { loading: this.options.load(name), users: 0, evicted: false };
    entry.loading.catch(() => {
      if (this.entries.get(name) === entry) this.entries.delete(name);
    });
    this.entries.set(name, entry);
    for (const [oldName, old] of this.entries) {
      if (this.entries.size <= this.options.capacity) break;
      this.entries.delete(oldName);
      void this.evict(old);
    }
    return entry;
  }

  private async evict(entry: Entry<T>): Promise<void> {
    entry.evicted = true;
    if (entry.users === 0) await this.releaseEntry(entry);
  }

  private async releaseEntry(entry: Entry<T>): Promise<void> {
    const model = await entry.loading.catch(() => undefined);
    // A release that fails leaves nothing to retry; the model is out of the cache either way.
    if (model !== undefined) await this.options.release(model).catch(() => undefined);
  }
}
