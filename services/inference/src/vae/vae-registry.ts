import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  ModelCache,
  ModelContractError,
  OnnxSession,
  optionalModelJson,
  type SessionSettings,
} from "@dmesh/onnx";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, quote } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import type { LoadedModel } from "../models/loaded-model.js";
import { type Vae, vaeContract } from "./vae.js";

const FIELD = "spec.models.vae";

/** A VAE suite's name is one directory of MODELS_DIR: letters, digits, `.`, `_`, `-`. */
const NAME = /^(?!\.\.?$)[A-Za-z0-9._-]+$/;

/**
 * VAE suites named by `ModelSuite.vae`: a directory of MODELS_DIR with `vae_decoder/model.onnx` (and
 * `vae_encoder/model.onnx` for image-to-image), as optimum exports a VAE alone, or any model suite's own VAE.
 * Loaded on first use, checked like a model (their I/O contract), kept least-recently-used beside the models,
 * and checked against each base model they decode for (latent channels and scaling factor).
 */
export class VaeRegistry {
  private readonly cache: ModelCache<Vae>;

  constructor(
    private readonly modelsDir: string,
    private readonly settings: () => SessionSettings,
    capacity: number,
    private readonly logger: Logger,
  ) {
    this.cache = new ModelCache({
      capacity,
      load: (name) => this.load(name),
      release: async (vae, name) => {
        await Promise.all([vae.decoder.release(), vae.encoder?.release()]);
        this.logger.info({ vae: name }, "VAE unloaded");
      },
    });
  }

  /** Checks that `name` names a VAE suite here, before any work: NOT_FOUND naming the field otherwise. */
  check(name: string): void {
    if (!NAME.test(name)) {
      throw new InvalidArgumentError(FIELD, `${quote(name)} is not a directory name of MODELS_DIR`);
    }
    if (!existsSync(join(this.modelsDir, name, "vae_decoder", "model.onnx"))) {
      const known = this.known().join(", ") || "none";
      throw new NotFoundError(FIELD, `no VAE ${quote(name)} in ${this.modelsDir} (known: ${known})`);
    }
  }

  /**
   * The VAE suite `name`, loaded, for decoding `base`'s latents: FAILED_PRECONDITION naming it when its latent
   * space is not the base's. Call `release` when the request is done with it.
   */
  async acquire(name: string, base: LoadedModel): Promise<{ vae: Vae; release: () => void }> {
    this.check(name);
    let lease: Awaited<ReturnType<ModelCache<Vae>["acquire"]>>;
    try {
      lease = await this.cache.acquire(name);
    } catch (err) {
      throw err instanceof ModelContractError ? err.forField(FIELD) : err;
    }
    const vae = lease.value;
    const own = base.vae.scalingFactor;
    if (Math.abs(vae.scalingFactor - own) > 1e-6) {
      lease.release();
      throw new FailedPreconditionError(
        `VAE "${name}" has scaling_factor ${vae.scalingFactor} but model "${base.dir.id}" has ${own}: it decodes another latent space (SD 1.x/2.x 0.18215, SDXL 0.13025)`,
        FIELD,
      );
    }
    return { vae, release: () => lease.release() };
  }

  async close(): Promise<void> {
    await this.cache.clear();
  }

  /** Directories that hold a VAE decoder (VAE suites, and model suites whose VAE can be borrowed). */
  private known(): string[] {
    if (!existsSync(this.modelsDir)) return [];
    return readdirSync(this.modelsDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(this.modelsDir, d.name, "vae_decoder", "model.onnx")))
      .map((d) => d.name)
      .sort();
  }

  private async load(name: string): Promise<Vae> {
    const dir = join(this.modelsDir, name);
    const settings = this.settings();
    const decoder = await OnnxSession.open(
      name,
      "vae_decoder",
      join(dir, "vae_decoder", "model.onnx"),
      settings,
    );
    let encoder: OnnxSession | undefined;
    try {
      const encoderFile = join(dir, "vae_encoder", "model.onnx");
      encoder = existsSync(encoderFile)
        ? await OnnxSession.open(name, "vae_encoder", encoderFile, {
            ...settings,
            executionProviders: decoder.providers,
          })
        : undefined;
      const { decoderOutput, encoderOutput } = vaeContract(name, decoder, encoder);
      const config = optionalModelJson(join(dir, "vae_decoder", "config.json"));
      const scalingFactor = Number(config.scaling_factor);
      if (!(scalingFactor > 0)) {
        throw new ModelContractError(name, `vae_decoder/config.json has no positive scaling_factor`);
      }
      this.logger.info({ vae: name, providers: decoder.providers }, "VAE loaded");
      return {
        id: name,
        field: FIELD,
        decoder,
        encoder,
        decoderOutput,
        encoderOutput,
        scalingFactor,
        sampleSize: Number(config.sample_size) || 512,
      };
    } catch (err) {
      await Promise.all([decoder.release(), encoder?.release()]);
      throw err;
    }
  }
}
