import type { RunClock } from "@dmesh/onnx";
import type { LoadedModel } from "../models/loaded-model.js";
import type { BufferPool } from "./buffer-pool.js";
import type { EncodedPrompts } from "./prompt-encoder.js";
import type { UnetBatcher, UnetFeed, UnetResult } from "./unet-batcher.js";

/** SDXL's added conditioning for the unconditional and the conditional rows. */
export interface TimeIds {
  readonly positive: readonly number[];
  readonly negative: readonly number[];
}

/**
 * The UNet inputs of a batch of images: with guidance, rows [uncond × n, cond × n] as diffusers lays them out.
 * The conditioning rows are written once per batch; a step only rewrites `sample` and `timestep`, so a
 * denoising loop allocates no input buffers; they come from a pool and go back to it on `release`. The
 * model's batcher may run the rows together with other requests'.
 */
export class UnetBatch {
  readonly rows: number;
  private readonly rowSize: number;
  private readonly sample: Float32Array;
  private readonly timestep = new Float32Array(1);
  private readonly conditioning: Record<string, UnetFeed> = {};

  constructor(
    private readonly pool: BufferPool,
    private readonly batcher: UnetBatcher,
    private readonly model: LoadedModel,
    prompts: EncodedPrompts,
    timeIds: TimeIds | undefined,
    readonly images: number,
    readonly guided: boolean,
    private readonly latentHeight: number,
    private readonly latentWidth: number,
    /** The most images a merged run may hold (MAX_UNET_BATCH). */
    private readonly maxImages: number,
  ) {
    batcher.attach();
    this.rows = guided ? 2 * images : images;
    this.rowSize = model.contract.unetInChannels * latentHeight * latentWidth;
    this.sample = pool.take(this.rows * this.rowSize);
    const rowsOf = (negative: Float32Array, positive: Float32Array) => {
      const out = pool.take(this.rows * positive.length);
      for (let r = 0; r < this.rows; r++)
        out.set(guided && r < images ? negative : positive, r * positive.length);
      return out;
    };
    this.conditioning.encoder_hidden_states = {
      data: rowsOf(prompts.negative, prompts.positive),
      dims: [this.rows, prompts.tokens, prompts.dim],
    };
    if (model.contract.usesTextEmbeds && timeIds) {
      const none = new Float32Array(prompts.pooledDim);
      this.conditioning.text_embeds = {
        data: rowsOf(prompts.pooledNegative ?? none, prompts.pooledPositive ?? none),
        dims: [this.rows, prompts.pooledDim],
      };
      this.conditioning.time_ids = {
        data: rowsOf(Float32Array.from(timeIds.negative), Float32Array.from(timeIds.positive)),
        dims: [this.rows, timeIds.positive.length],
      };
    }
  }

  /**
   * The UNet's prediction for every row at timestep `t`. `inputs[i]` is image i's model input as channel
   * groups to concatenate: its scaled latents, then an inpainting UNet's mask and masked-image latents.
   * `residuals`, for a UNet with ControlNet residual inputs, gives them from this run's other inputs.
   */
  async predict(
    inputs: readonly (readonly Float32Array[])[],
    t: number,
    clock: RunClock,
    residuals?: (feeds: Readonly<Record<string, UnetFeed>>) => Promise<Record<string, UnetFeed>>,
  ): Promise<UnetResult> {
    for (let i = 0; i < this.images; i++) {
      let offset = i * this.rowSize;
      for (const part of inputs[i] ?? []) {
        this.sample.set(part, offset);
        if (this.guided) this.sample.set(part, offset + this.images * this.rowSize);
        offset += part.length;
      }
    }
    this.timestep[0] = t;
    const { contract } = this.model;
    const feeds: Record<string, UnetFeed> = {
      sample: {
        data: this.sample,
        dims: [this.rows, contract.unetInChannels, this.latentHeight, this.latentWidth],
      },
      timestep: { data: this.timestep, dims: contract.timestepRank === 0 ? [] : [1] },
      ...this.conditioning,
    };
    if (residuals) Object.assign(feeds, await residuals(feeds));
    return this.batcher.run({
      feeds,
      rows: this.rows,
      timestep: t,
      maxRows: Math.max(this.rows, this.maxImages * (this.guided ? 2 : 1)),
      clock,
    });
  }

  /** Gives the buffers back to the pool; the batch must not be used after. */
  release(): void {
    this.batcher.detach();
    this.pool.give([this.sample, ...Object.values(this.conditioning).map((f) => f.data)]);
  }
}
