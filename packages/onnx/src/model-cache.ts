export interface ModelCacheOptions<T> {
  /** Entries kept loaded: idle ones beyond it are released, least recently used first. */
  readonly capacity: number;
  /** Bytes kept loaded (the sum of `bytes`): idle entries beyond it are released too. */
  readonly maxBytes?: number;
  readonly load: (key: string) => Promise<T>;
  readonly release: (value: T, key: string) => Promise<void>;
  /** What a loaded entry holds, in bytes (asked once, when it has loaded); 0 without it. */
  readonly bytes?: (value: T, key: string) => number;
}

/** A loaded value held for one user; `release` once done with it (again is a no-op). */
export interface CacheLease<T> {
  readonly value: T;
  release(): void;
}

export interface CacheEntryInfo {
  readonly key: string;
  readonly loaded: boolean;
  /** Leases held now. */
  readonly users: number;
  /** Date.now() of the last acquire or release; 0 before. */
  readonly lastUsed: number;
  readonly bytes: number;
}

interface Entry<T> {
  readonly key: string;
  readonly loading: Promise<T>;
  value: T | undefined;
  users: number;
  lastUsed: number;
  bytes: number;
  /** Out of the cache: released when its last user finishes. */
  dropped: boolean;
}

/**
 * Loaded models (sessions, suites, patched adapter sets) by key. Concurrent requests for a key share one
 * load; a failed load is not kept, so the next request tries again. Entries in use are never released
 * under their users: beyond `capacity` entries (or `maxBytes`), the idle ones are released least recently
 * used first, when a new key is asked for and whenever a user finishes.
 */
export class ModelCache<T> {
  /** Least recently used first. */
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly options: ModelCacheOptions<T>) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1)
      throw new RangeError(`capacity must be a positive integer, got ${options.capacity}`);
  }

  /** Keys loaded or loading, least recently used first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  info(key: string): CacheEntryInfo | undefined {
    const e = this.entries.get(key);
    return e && { key, loaded: e.value !== undefined, users: e.users, lastUsed: e.lastUsed, bytes: e.bytes };
  }

  /** The loaded value of `key`, without using it (it may be released at any time after). */
  peek(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }

  /** Bytes of the loaded entries. */
  get totalBytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    return total;
  }

  /** The value of `key`, loading it if need be; the lease keeps it loaded until released. */
  async acquire(key: string): Promise<CacheLease<T>> {
    const entry = this.entryFor(key);
    entry.users++;
    entry.lastUsed = Date.now();
    let value: T;
    try {
      value = await entry.loading;
    } catch (error) {
      entry.users--;
      throw error;
    }
    let released = false;
    return {
      value,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        entry.lastUsed = Date.now();
        if (entry.dropped) {
          if (entry.users === 0) void this.releaseEntry(entry);
        } else void this.evict();
      },
    };
  }

  /** Runs `work` with the value of `key` held. */
  async use<R>(key: string, work: (value: T) => Promise<R>): Promise<R> {
    const lease = await this.acquire(key);
    try {
      return await work(lease.value);
    } finally {
      lease.release();
    }
  }

  /** Releases `key` now if it is idle; false (and nothing done) while it is in use. */
  async delete(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (!entry) return true;
    if (entry.users > 0) return false;
    this.entries.delete(key);
    entry.dropped = true;
    await this.releaseEntry(entry);
    return true;
  }

  /** Empties the cache: idle entries are released now, entries in use when their users finish. */
  async clear(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    for (const entry of entries) entry.dropped = true;
    await Promise.all(entries.filter((e) => e.users === 0).map((e) => this.releaseEntry(e)));
  }

  private entryFor(key: string): Entry<T> {
    const found = this.entries.get(key);
    if (found) {
      this.entries.delete(key);
      this.entries.set(key, found);
      return found;
    }
    const entry: Entry<T> = {
      key,
      loading: this.options.load(key),
      value: undefined,
      users: 0,
      lastUsed: 0,
      bytes: 0,
      dropped: false,
    };
    entry.loading.then(
      (value) => {
        entry.value = value;
        entry.bytes = this.options.bytes?.(value, key) ?? 0;
        if (!entry.dropped) void this.evict();
      },
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    this.entries.set(key, entry);
    void this.evict();
    return entry;
  }

  /** Releases idle entries, least recently used first, while the cache holds more than it may. */
  private async evict(): Promise<void> {
    const over = () =>
      this.entries.size > this.options.capacity ||
      (this.options.maxBytes !== undefined && this.totalBytes > this.options.maxBytes);
    const released: Promise<void>[] = [];
    for (const entry of [...this.entries.values()]) {
      if (!over()) break;
      if (entry.users > 0 || entry.value === undefined) continue;
      this.entries.delete(entry.key);
      entry.dropped = true;
      released.push(this.releaseEntry(entry));
    }
    await Promise.all(released);
  }

  private async releaseEntry(entry: Entry<T>): Promise<void> {
    const value = await entry.loading.catch(() => undefined);
    // A release that fails leaves nothing to retry; the entry is out of the cache either way.
    if (value !== undefined) await this.options.release(value, entry.key).catch(() => undefined);
  }
}
