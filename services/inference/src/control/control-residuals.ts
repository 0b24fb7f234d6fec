import type { RunClock, TensorFeed } from "@dmesh/onnx";
import { ModelContractError } from "@dmesh/onnx";
import type { BufferPool } from "../pipeline/buffer-pool.js";
import { modelRun } from "../pipeline/model-run-span.js";
import { controlTensor } from "./control-tensor.js";
import type { LoadedControlNet } from "./loaded-control-net.js";
import { type ResidualLayout, sideAtLevel } from "./residual-layout.js";
import type { RgbImage } from "./rgb-image.js";

/** One ControlNet of a request, ready to run: its model, its map at the generation size, and when it acts. */
export interface ControlUnit {
  readonly net: LoadedControlNet;
  readonly map: RgbImage;
  readonly scale: number;
  /** The fraction of the steps it acts on: step/total within [start, end], as the A1111 extension decides. */
  readonly start: number;
  readonly end: number;
}

/** A UNet input of shape [rows, ...], as the pipeline feeds it. */
export interface ResidualFeed {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/**
 * The residual inputs of one UNet batch (rows = images, doubled with classifier-free guidance) at each step:
 * the sum of the residuals of the units acting on that step, each ControlNet run on the same rows as the UNet
 * (unconditional and conditional alike, as the extension's "Balanced" mode and diffusers do), or zeros when
 * none acts. Buffers come from the pool and go back on `release`.
 */
export class BatchResiduals {
  private readonly conds: Float32Array[];
  private zeros: Record<string, ResidualFeed> | undefined;
  private readonly sums = new Map<string, Float32Array>();
  private latentSample: Float32Array | undefined;
  private checked = false;

  constructor(
    private readonly layout: ResidualLayout,
    private readonly units: readonly ControlUnit[],
    private readonly rows: number,
    private readonly latentHeight: number,
    private readonly latentWidth: number,
    private readonly pool: BufferPool,
  ) {
    // The maps are the same at every step: their [rows, 3, H, W] tensors are made once per batch.
    this.conds = units.map((u) => {
      const plane = 3 * u.map.width * u.map.height;
      const cond = pool.take(rows * plane);
      cond.set(controlTensor(u.map, 1));
      for (let r = 1; r < rows; r++) cond.copyWithin(r * plane, 0, plane);
      return cond;
    });
  }

  /** The residual feeds for a UNet run at step `step` of `total` (0-based, the whole schedule's). */
  async feeds(
    unet: Readonly<Record<string, ResidualFeed>>,
    step: number,
    total: number,
    clock: RunClock,
  ): Promise<Record<string, ResidualFeed>> {
    const fraction = step / total;
    const active = this.units
      .map((unit, i) => ({ unit, cond: this.conds[i] as Float32Array }))
      .filter(({ unit }) => fraction >= unit.start && fraction <= unit.end);
    if (active.length === 0) return this.zeroFeeds();
    const names = [...this.layout.down.map((s) => s.name), this.layout.mid.name];
    const out: Record<string, ResidualFeed> = {};
    for (const [k, { unit, cond }] of active.entries()) {
      const residuals = await this.run(unit, cond, unet, clock);
      // By position: the ControlNet may name its outputs in the other of the two namings.
      const theirs = [...unit.net.contract.down.map((s) => s.name), unit.net.contract.mid.name];
      names.forEach((name, j) => {
        const r = residuals[theirs[j] as string] as ResidualFeed;
        if (k === 0) {
          out[name] = r;
          return;
        }
        // Several units: their residuals are added, as the extension and diffusers' MultiControlNet add them.
        const sum = this.sumBuffer(name, r.data.length, out[name] as ResidualFeed);
        for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (r.data[i] as number);
        out[name] = { data: sum, dims: r.dims };
      });
    }
    return out;
  }

  release(): void {
    this.pool.give([...this.conds, ...this.sums.values()]);
    if (this.latentSample) this.pool.give([this.latentSample]);
    if (this.zeros) this.pool.give(Object.values(this.zeros).map((f) => f.data));
  }

  private async run(
    unit: ControlUnit,
    cond: Float32Array,
    unet: Readonly<Record<string, ResidualFeed>>,
    clock: RunClock,
  ): Promise<Record<string, ResidualFeed>> {
    const { contract, session, name } = unit.net;
    const feeds: Record<string, TensorFeed> = {
      sample: this.controlSample(unet.sample as ResidualFeed, contract.sampleChannels),
      timestep: { data: (unet.timestep as ResidualFeed).data, dims: contract.timestepRank === 0 ? [] : [1] },
      encoder_hidden_states: unet.encoder_hidden_states as ResidualFeed,
      controlnet_cond: { data: cond, dims: [this.rows, 3, unit.map.height, unit.map.width] },
      conditioning_scale: { data: Float32Array.of(unit.scale), dims: contract.scaleDims },
    };
    if (contract.usesTextEmbeds) {
      feeds.text_embeds = unet.text_embeds as ResidualFeed;
      feeds.time_ids = unet.time_ids as ResidualFeed;
    }
    const outputs = [...contract.down.map((s) => s.name), contract.mid.name];
    const result = await modelRun(`controlnet/${name}`, "controlnet", () =>
      session.run(feeds, { clock, outputs }),
    );
    if (!this.checked) {
      this.checkSizes(unit, result);
      this.checked = true;
    }
    return result;
  }

  /** The latents a ControlNet sees: the UNet's sample, or its first 4 channels beside an inpainting UNet. */
  private controlSample(sample: ResidualFeed, channels: number): ResidualFeed {
    const [rows = 0, unetChannels = 0, h = 0, w = 0] = sample.dims;
    if (unetChannels === channels) return sample;
    const plane = h * w;
    this.latentSample ??= this.pool.take(rows * channels * plane);
    const out = this.latentSample;
    for (let r = 0; r < rows; r++) {
      out.set(
        sample.data.subarray(r * unetChannels * plane, (r * unetChannels + channels) * plane),
        r * channels * plane,
      );
    }
    return { data: out, dims: [rows, channels, h, w] };
  }

  /** The residuals a ControlNet returned have the sizes the UNet takes (checked on a batch's first run). */
  private checkSizes(unit: ControlUnit, result: Record<string, ResidualFeed>): void {
    const expected = this.expectedDims();
    const theirs = [...unit.net.contract.down.map((s) => s.name), unit.net.contract.mid.name];
    theirs.forEach((name, i) => {
      const got = result[name]?.dims ?? [];
      const want = expected[i] as readonly number[];
      if (got.join("x") !== want.join("x")) {
        throw new ModelContractError(
          `controlnet/${unit.net.name}`,
          `controlnet output "${name}" is [${got.join(", ")}] at this size; the unet takes [${want.join(", ")}]`,
        );
      }
    });
  }

  private expectedDims(): (readonly number[])[] {
    return [...this.layout.down, this.layout.mid].map((slot) => [
      this.rows,
      slot.channels as number,
      sideAtLevel(this.latentHeight, slot.level),
      sideAtLevel(this.latentWidth, slot.level),
    ]);
  }

  private zeroFeeds(): Record<string, ResidualFeed> {
    if (this.zeros) return this.zeros;
    const slots = [...this.layout.down, this.layout.mid];
    const dims = this.expectedDims();
    this.zeros = Object.fromEntries(
      slots.map((slot, i) => {
        const d = dims[i] as readonly number[];
        const data = this.pool.take(d.reduce((n, x) => n * x, 1));
        data.fill(0);
        return [slot.name, { data, dims: d }];
      }),
    );
    return this.zeros;
  }

  private sumBuffer(name: string, length: number, first: ResidualFeed): Float32Array {
    let sum = this.sums.get(name);
    if (!sum) {
      sum = this.pool.take(length);
      this.sums.set(name, sum);
    }
    if (first.data !== sum) sum.set(first.data);
    return sum;
  }
}
