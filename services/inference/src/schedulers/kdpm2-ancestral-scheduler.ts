import { checkSigmaSchedule } from "./euler-scheduler.js";
import {
  interleave,
  interleavedTimesteps,
  type Kdpm2Config,
  kdpm2BaseSchedule,
  kdpm2Options,
  kdpm2PredictOriginal,
  logMidpoints,
} from "./kdpm2-scheduler.js";
import { alphasCumprod } from "./noise-schedule.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { SigmaSchedulerBase } from "./sigma-scheduler-base.js";
import { f32 } from "./torch-numerics.js";

export const kdpm2AncestralOptions = kdpm2Options;

/**
 * diffusers' KDPM2AncestralDiscreteScheduler (k-diffusion's `sample_dpm_2_ancestral`): the KDPM2 midpoint
 * step down to sigma_down, then fresh noise of sigma_up, drawn from the step's generator.
 */
export class Kdpm2AncestralScheduler extends SigmaSchedulerBase<Kdpm2Config> {
  readonly kind = "KDPM2AncestralDiscreteScheduler";
  override readonly order = 2;
  private sigmasInterpol: Float32Array = new Float32Array(0);
  private sigmasUp: Float32Array = new Float32Array(0);
  private sigmasDown: Float32Array = new Float32Array(0);
  private firstOrderSample: Float32Array | null = null;

  constructor(raw: unknown) {
    const config = parseConfig(kdpm2AncestralOptions, raw);
    checkSigmaSchedule(config);
    super(config, alphasCumprod({ ...config, rescale_betas_zero_snr: false }));
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    this.checkInferenceSteps(numInferenceSteps, config.num_train_timesteps);
    const base = kdpm2BaseSchedule(config, this.trainSigmas, numInferenceSteps);
    const { sigmas } = base;
    const next = Float32Array.from([...sigmas.slice(1), 0]);
    const up = sigmas.map((s, i) => {
      const nextSq = f32((next[i] as number) * (next[i] as number));
      const sq = f32(s * s);
      return f32(Math.sqrt(f32(f32(nextSq * f32(sq - nextSq)) / sq)));
    });
    const down = next.map((n, i) =>
      f32(Math.sqrt(f32(f32(n * n) - f32((up[i] as number) * (up[i] as number))))),
    );
    down[down.length - 1] = 0;
    const interpol = logMidpoints(sigmas, down);
    interpol.fill(0, -2);
    const timesteps = interleavedTimesteps(base, interpol.slice(0, -2));
    this.resetSchedule(timesteps, interleave(sigmas), numInferenceSteps);
    this.sigmasInterpol = interleave(interpol);
    this.sigmasUp = interleave(up);
    this.sigmasDown = interleave(down);
    this.firstOrderSample = null;
  }

  override scaleModelInput(sample: Float32Array, timestep: number): Float32Array {
    const index = this.currentIndex(timestep);
    const sigma =
      this.firstOrderSample === null ? this.sigmaAt(index) : (this.sigmasInterpol[index - 1] as number);
    const scale = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
    return sample.map((x) => x / scale);
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.currentIndex(timestep);
    const first = this.firstOrderSample === null;
    const at = (a: Float32Array, i: number) => a[(i + a.length) % a.length] as number;
    const sigma = this.sigmaAt(first ? index : index - 1);
    const sigmaInterpol = at(this.sigmasInterpol, first ? index : index - 1);
    const sigmaUp = at(this.sigmasUp, first ? index : index - 1);
    const sigmaDown = at(this.sigmasDown, index - 1);
    const sigmaInput = first ? sigma : sigmaInterpol;
    const predOriginal = kdpm2PredictOriginal(this.config.prediction_type, modelOutput, sample, sigmaInput);
    const derivative = sample.map((x, i) => f32(x - (predOriginal[i] as number)) / sigmaInput);
    let prevSample: Float32Array;
    if (first) {
      const dt = f32(sigmaInterpol - sigma);
      this.firstOrderSample = sample;
      prevSample = sample.map((x, i) => x + f32((derivative[i] as number) * dt));
    } else {
      const dt = f32(sigmaDown - sigma);
      const start = this.firstOrderSample as Float32Array;
      this.firstOrderSample = null;
      const noise = this.noiseFor(options, sample.length);
      prevSample = start.map((x, i) => {
        const stepped = f32(x + f32((derivative[i] as number) * dt));
        return stepped + f32((noise[i] as number) * sigmaUp);
      });
    }
    this.index = index + 1;
    return { prevSample, predOriginalSample: predOriginal };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return {
      sigmasInterpol: this.sigmasInterpol,
      sigmasUp: this.sigmasUp,
      sigmasDown: this.sigmasDown,
      sample: this.firstOrderSample,
    };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { sigmasInterpol, sigmasUp, sigmasDown, sample } = memory;
    if (
      !(sigmasInterpol instanceof Float32Array) ||
      !(sigmasUp instanceof Float32Array) ||
      !(sigmasDown instanceof Float32Array) ||
      !(sample === null || sample instanceof Float32Array)
    ) {
      throw new SchedulerInputError("state", "needs sigmasInterpol, sigmasUp, sigmasDown and sample");
    }
    this.sigmasInterpol = sigmasInterpol;
    this.sigmasUp = sigmasUp;
    this.sigmasDown = sigmasDown;
    this.firstOrderSample = sample;
  }
}
