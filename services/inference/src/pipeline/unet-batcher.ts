import type { RunClock } from "@dmesh/onnx";
import { unetBatchSize } from "../inference-metrics.js";
import type { LoadedModel } from "../models/loaded-model.js";
import type { BufferPool } from "./buffer-pool.js";
import { modelRun } from "./model-run-span.js";

/** One UNet input of shape [rows, ...]. */
export interface UnetFeed {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** A UNet call for some rows of one request: its inputs (`timestep` holding `timestep`), and its limits. */
export interface UnetJob {
  readonly feeds: Readonly<Record<string, UnetFeed>>;
  readonly rows: number;
  readonly timestep: number;
  /** The most rows this request lets a merged run have (MAX_UNET_BATCH images, doubled with guidance). */
  readonly maxRows: number;
  readonly clock: RunClock;
}

export interface UnetResult {
  /** The prediction for the job's rows. */
  readonly output: Float32Array;
  /** Whether other requests' rows shared the run. */
  readonly shared: boolean;
}

interface Pending {
  readonly job: UnetJob;
  readonly key: string;
  resolve(result: UnetResult): void;
  reject(err: unknown): void;
}

/**
 * Runs a model's UNet for every request that uses it, merging the calls that arrive together into one batch:
 * requests denoising in step with each other (same latent size and prompt length; the same timestep unless
 * the export takes one per row) share each run, as diffusers would batch them. A process runs one model at a
 * time (@dmesh/onnx's run gate), so concurrent generations otherwise only take turns; merged, they share the work.
 */
export class UnetBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private solo = 0;
  /** UNet batches (requests' phases) currently using this model. */
  private users = 0;
  /** Runs on their way through the model (on its worker thread). */
  private running = 0;

  constructor(
    private readonly model: LoadedModel,
    private readonly buffers: BufferPool,
  ) {}

  /** A request's batch starts using the model; `detach` when it is done. */
  attach(): void {
    this.users++;
  }

  detach(): void {
    this.users--;
  }

  run(job: UnetJob): Promise<UnetResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ job, key: this.keyOf(job), resolve, reject });
      if (this.users <= 1 && this.running === 0) {
        // Alone on the model: nothing to wait for.
        this.flush();
        return;
      }
      this.scheduleFlush();
    });
  }

  /**
   * Calls made in the same turn of the event loop join one run: generations whose previous runs ended in one
   * turn resume together, and from then on keep in step. While a run is in flight the model is busy anyway
   * (one run at a time per process), so what arrives meanwhile waits for it to end and then joins the jobs of
   * the generations it resumes: a request that starts while another runs falls in step with it.
   */
  private scheduleFlush(): void {
    if (this.scheduled || this.running > 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const pending = this.pending;
    this.pending = [];
    for (const group of groups(pending)) void this.runGroup(group);
  }

  /**
   * Jobs with the same key can share a run: same row shapes, and the same timestep unless the export takes one
   * per row. An export with a fixed batch size shares nothing.
   */
  private keyOf(job: UnetJob): string {
    const { contract } = this.model;
    if (contract.unetBatch !== undefined) return `solo ${this.solo++}`;
    const shapes = Object.entries(job.feeds)
      .filter(([name]) => name !== "timestep")
      .map(([name, feed]) => `${name}:${feed.dims.slice(1).join("x")}`);
    return `${shapes.join(",")}|${contract.timestepPerRow ? "t*" : `t=${job.timestep}`}`;
  }

  private async runGroup(group: Pending[]): Promise<void> {
    const { unet, contract } = this.model;
    const only = group.length === 1 ? group[0] : undefined;
    const rows = group.reduce((n, p) => n + p.job.rows, 0);
    const merged: Float32Array[] = [];
    this.running++;
    try {
      const first = (group[0] as Pending).job;
      let feeds = first.feeds;
      if (!only) {
        const joined: Record<string, UnetFeed> = {};
        for (const [name, feed] of Object.entries(first.feeds)) {
          if (name === "timestep") continue;
          const rowSize = feed.data.length / first.rows;
          const data = this.buffers.take(rows * rowSize);
          merged.push(data);
          let offset = 0;
          for (const p of group) {
            data.set((p.job.feeds[name] as UnetFeed).data, offset);
            offset += p.job.rows * rowSize;
          }
          joined[name] = { data, dims: [rows, ...feed.dims.slice(1)] };
        }
        const sameStep = group.every((p) => p.job.timestep === first.timestep);
        const timestep = sameStep
          ? Float32Array.of(first.timestep)
          : Float32Array.from(group.flatMap((p) => Array<number>(p.job.rows).fill(p.job.timestep)));
        joined.timestep = { data: timestep, dims: contract.timestepRank === 0 ? [] : [timestep.length] };
        feeds = joined;
      }
      const clock = { seconds: 0, calls: 0 };
      unetBatchSize.observe(rows);
      const out = await modelRun(this.model.dir.id, "unet", () =>
        unet.run(feeds, { clock, outputs: [contract.unetOutput] }),
      );
      const prediction = out[contract.unetOutput]?.data;
      if (!prediction) throw new Error(`unet did not return ${contract.unetOutput}`);
      const rowSize = prediction.length / rows;
      let offset = 0;
      for (const p of group) {
        p.job.clock.seconds += clock.seconds;
        p.job.clock.calls += clock.calls;
        p.resolve({ output: prediction.subarray(offset, offset + p.job.rows * rowSize), shared: !only });
        offset += p.job.rows * rowSize;
      }
    } catch (err) {
      for (const p of group) p.reject(err);
    } finally {
      this.buffers.give(merged);
      this.running--;
      if (this.running === 0 && this.pending.length > 0) this.scheduleFlush();
    }
  }
}

/** Pending jobs split into runs: compatible jobs together, in arrival order, within every job's row limit. */
function groups(pending: Pending[]): Pending[][] {
  const out: { key: string; rows: number; limit: number; jobs: Pending[] }[] = [];
  for (const p of pending) {
    const open = out.find((g) => g.key === p.key && g.rows + p.job.rows <= Math.min(g.limit, p.job.maxRows));
    if (open) {
      open.jobs.push(p);
      open.rows += p.job.rows;
      open.limit = Math.min(open.limit, p.job.maxRows);
    } else out.push({ key: p.key, rows: p.job.rows, limit: p.job.maxRows, jobs: [p] });
  }
  return out.map((g) => g.jobs);
}
