import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ModelCache, ModelContractError, type SessionSettings } from "@dmesh/onnx";
import { NotFoundError, quote } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { type LoadedControlNet, loadControlNet } from "./loaded-control-net.js";

/** Names a NOT_FOUND lists at most. */
const MAX_LISTED = 20;

/**
 * The ControlNets under the ControlNet folder (`<name>/model.onnx`, CONTROLNET_DIR or MODELS_DIR/controlnet):
 * loaded on first use, one load however many requests ask at once, shared, and released least recently used
 * beyond `capacity` idle ones.
 */
export class ControlNetRegistry {
  private readonly cache: ModelCache<LoadedControlNet>;

  constructor(
    readonly dir: string,
    /** Read at each load, so the provider chain settled at start applies. */
    private readonly settings: SessionSettings,
    capacity: number,
    private readonly logger: Logger,
  ) {
    this.cache = new ModelCache({
      capacity,
      load: (name) => this.load(name),
      release: async (net, name) => {
        await net.release();
        this.logger.info({ controlnet: name }, "controlnet unloaded");
      },
      bytes: (net) => net.fileBytes,
    });
  }

  /** The names of the ControlNets on disk, sorted. */
  names(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(this.dir, e.name, "model.onnx")))
      .map((e) => e.name)
      .sort();
  }

  /** The ControlNet `name`, loaded; `release` when done. NOT_FOUND naming `field` when there is none. */
  async acquire(name: string, field: string): Promise<{ net: LoadedControlNet; release: () => void }> {
    if (!existsSync(join(this.dir, name, "model.onnx"))) {
      const known = this.names();
      const listed = known.slice(0, MAX_LISTED).join(", ") + (known.length > MAX_LISTED ? ", …" : "");
      throw new NotFoundError(
        field,
        `no ControlNet ${quote(name)} in ${this.dir} (known: ${listed || "none"})`,
      );
    }
    try {
      const lease = await this.cache.acquire(name);
      return { net: lease.value, release: () => lease.release() };
    } catch (err) {
      throw err instanceof ModelContractError ? err.forField(field) : err;
    }
  }

  async close(): Promise<void> {
    await this.cache.clear();
  }

  private async load(name: string): Promise<LoadedControlNet> {
    const started = performance.now();
    const net = await loadControlNet(name, join(this.dir, name, "model.onnx"), this.settings);
    this.logger.info(
      {
        controlnet: name,
        ms: Math.round(performance.now() - started),
        residuals: net.contract.down.length,
        providers: net.session.providers,
      },
      "controlnet loaded",
    );
    return net;
  }
}
