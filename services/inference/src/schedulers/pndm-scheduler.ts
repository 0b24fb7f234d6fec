import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { addNoiseByAlpha, alphaProdAt, alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { arange, linspace, roundHalfEven } from "./numpy-numerics.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { SchedulerBase } from "./scheduler-base.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { f32 } from "./torch-numerics.js";

// diffusers' PNDMScheduler has no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...pndmNoiseOptions } = noiseScheduleOptions({
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
});

export const pndmOptions = {
  ...pndmNoiseOptions,
  skip_prk_steps: {
    type: "boolean",
    default: false,
    description: "Start with plain linear multistep (PLMS) steps instead of the paper's Runge-Kutta warm-up.",
  },
  set_alpha_to_one: {
    type: "boolean",
    default: false,
    description: "Use alpha_prod = 1 past the last step (else the alpha of training step 0).",
  },
  prediction_type: predictionTypeOption(["epsilon", "v_prediction"]),
  timestep_spacing: timestepSpacingOption("leading"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type PndmConfig = ConfigOf<typeof pndmOptions>;

/** PNDM's linear multistep method is fourth order: four Runge-Kutta steps warm it up. */
const PNDM_ORDER = 4;

/**
 * diffusers' PNDMScheduler (pseudo numerical methods, arXiv:2202.09778), Stable Diffusion 1.x's default.
 * Without `skip_prk_steps` the schedule starts with 12 Runge-Kutta (PRK) entries, four model evaluations per
 * step of the first three; then PLMS steps reuse the last four noise estimates. `step` dispatches on its
 * counter as diffusers' does, so a loop over `timesteps` runs both phases.
 */
export class PndmScheduler extends SchedulerBase<PndmConfig> {
  readonly kind = "PNDMScheduler";
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  private prkCount = 0;
  private counter = 0;
  private ets: Float32Array[] = [];
  private curModelOutput: Float32Array | null = null;
  private curSample: Float32Array | null = null;

  constructor(raw: unknown) {
    const config = parseConfig(pndmOptions, raw);
    super(config);
    this.alphasCumprod = alphasCumprod({ ...config, rescale_betas_zero_snr: false });
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : (this.alphasCumprod[0] as number);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    const train = config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    const n = numInferenceSteps;
    const ascending = ascendingTimesteps(config, n);
    let timesteps: number[];
    if (config.skip_prk_steps) {
      // [t0, ..., t(n-2), t(n-2), t(n-1)] reversed: the first PLMS step is taken twice (its own Heun pair).
      timesteps = [...ascending.slice(0, -1), ...ascending.slice(-2, -1), ...ascending.slice(-1)].reverse();
      this.prkCount = 0;
    } else {
      const half = Math.floor(Math.floor(train / n) / 2);
      const last = ascending.slice(-PNDM_ORDER).flatMap((t) => [t, t + half]);
      const prk = last
        .slice(0, -1)
        .flatMap((t) => [t, t])
        .slice(1, -1)
        .reverse();
      timesteps = [...prk, ...ascending.slice(0, -3).reverse()];
      this.prkCount = prk.length;
    }
    if (timesteps.some((t) => !Number.isInteger(t) || t < 0 || t >= train)) {
      throw new SchedulerInputError(
        "num_inference_steps",
        `${n} steps put PNDM's timesteps outside [0, ${train}); use fewer steps or skip_prk_steps`,
      );
    }
    this.resetSchedule(timesteps, null, n);
    this.counter = 0;
    this.ets = [];
    this.curModelOutput = null;
    this.curSample = null;
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  step(
    modelOutput: Float32Array,
    timestep: number,
    sample: Float32Array,
    _options?: StepOptions,
  ): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.index ?? this.begin ?? Math.max(0, this.schedule.indexOf(timestep));
    const prevSample =
      this.counter < this.prkCount && !this.config.skip_prk_steps
        ? this.stepPrk(modelOutput, timestep, sample)
        : this.stepPlms(modelOutput, timestep, sample);
    this.counter++;
    this.index = index + 1;
    return { prevSample };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    return addNoiseByAlpha(original, noise, alphaProdAt(this.alphasCumprod, timestep));
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return {
      counter: this.counter,
      prkCount: this.prkCount,
      ets: this.ets,
      curModelOutput: this.curModelOutput,
      curSample: this.curSample,
    };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { counter, prkCount, ets, curModelOutput, curSample } = memory;
    const tensorOrNull = (v: SolverMemoryValue | undefined) => v === null || v instanceof Float32Array;
    if (
      typeof counter !== "number" ||
      typeof prkCount !== "number" ||
      !Array.isArray(ets) ||
      !ets.every((e) => e instanceof Float32Array) ||
      !tensorOrNull(curModelOutput) ||
      !tensorOrNull(curSample)
    ) {
      throw new SchedulerInputError("state", "needs counter, prkCount, ets, curModelOutput and curSample");
    }
    this.counter = counter;
    this.prkCount = prkCount;
    this.ets = ets as Float32Array[];
    this.curModelOutput = curModelOutput as Float32Array | null;
    this.curSample = curSample as Float32Array | null;
  }

  /** diffusers' `step_prk`: one of the four Runge-Kutta evaluations of a warm-up step. */
  private stepPrk(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const ratio = Math.floor(this.config.num_train_timesteps / (this.inferenceSteps as number));
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(ratio / 2);
    const prevTimestep = timestep - diffToPrev;
    const stepTimestep = this.schedule[Math.floor(this.counter / 4) * 4] as number;
    const phase = this.counter % 4;
    let output = modelOutput;
    const weighted = (w: number) => modelOutput.map((m) => f32(f32(w) * m));
    const accumulate = (w: number) => {
      const term = weighted(w);
      this.curModelOutput = this.curModelOutput
        ? this.curModelOutput.map((c, i) => f32(c + (term[i] as number)))
        : term;
    };
    if (phase === 0) {
      accumulate(1 / 6);
      this.ets.push(modelOutput);
      this.curSample = sample;
    } else if (phase === 1 || phase === 2) {
      accumulate(1 / 3);
    } else {
      const term = weighted(1 / 6);
      const current = this.curModelOutput;
      output = current ? current.map((c, i) => f32(c + (term[i] as number))) : term;
      this.curModelOutput = null;
    }
    return this.previousSample(this.curSample ?? sample, stepTimestep, prevTimestep, output);
  }

  /** diffusers' `step_plms`: the linear multistep update over the last four noise estimates. */
  private stepPlms(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (!this.config.skip_prk_steps && this.ets.length < 3) {
      throw new SchedulerInputError("timestep", "PLMS steps need the 12 Runge-Kutta steps before them");
    }
    const ratio = Math.floor(this.config.num_train_timesteps / (this.inferenceSteps as number));
    let current = timestep;
    let prevTimestep = timestep - ratio;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput);
    } else {
      prevTimestep = timestep;
      current = timestep + ratio;
    }
    const e = this.ets;
    const at = (k: number) => e[e.length - k] as Float32Array;
    let output: Float32Array;
    let x = sample;
    if (e.length === 1 && this.counter === 0) {
      output = modelOutput;
      this.curSample = sample;
    } else if (e.length === 1 && this.counter === 1) {
      output = modelOutput.map((m, i) => f32(m + (at(1)[i] as number)) / 2);
      x = this.curSample as Float32Array;
      this.curSample = null;
    } else if (e.length === 2) {
      output = at(1).map((a, i) => f32(f32(3 * a) - (at(2)[i] as number)) / 2);
    } else if (e.length === 3) {
      output = at(1).map((a, i) => {
        const sum = f32(f32(f32(23 * a) - f32(16 * (at(2)[i] as number))) + f32(5 * (at(3)[i] as number)));
        return f32(sum / 12);
      });
    } else {
      const scale = f32(1 / 24);
      output = at(1).map((a, i) => {
        const sum = f32(
          f32(f32(f32(55 * a) - f32(59 * (at(2)[i] as number))) + f32(37 * (at(3)[i] as number))) -
            f32(9 * (at(4)[i] as number)),
        );
        return f32(scale * sum);
      });
    }
    return this.previousSample(x, current, prevTimestep, output);
  }

  /** diffusers' `_get_prev_sample`: formula (9) of the PNDM paper. */
  private previousSample(
    sample: Float32Array,
    timestep: number,
    prevTimestep: number,
    modelOutput: Float32Array,
  ): Float32Array {
    const alphaProd = alphaProdAt(this.alphasCumprod, timestep);
    const alphaProdPrev =
      prevTimestep >= 0 ? alphaProdAt(this.alphasCumprod, prevTimestep) : this.finalAlphaCumprod;
    const betaProd = f32(1 - alphaProd);
    const betaProdPrev = f32(1 - alphaProdPrev);
    let eps = modelOutput;
    if (this.config.prediction_type === "v_prediction") {
      const sqrtAlpha = f32(Math.sqrt(alphaProd));
      const sqrtBeta = f32(Math.sqrt(betaProd));
      eps = modelOutput.map((m, i) => f32(sqrtAlpha * m) + f32(sqrtBeta * (sample[i] as number)));
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdPrev / alphaProd)));
    const denominator = f32(
      f32(alphaProd * f32(Math.sqrt(betaProdPrev))) +
        f32(Math.sqrt(f32(f32(alphaProd * betaProd) * alphaProdPrev))),
    );
    const alphaDiff = f32(alphaProdPrev - alphaProd);
    return sample.map(
      (x, i) => f32(sampleCoeff * x) - f32(f32(alphaDiff * (eps[i] as number)) / denominator),
    );
  }
}

/** PNDM's integer timesteps in increasing order, per `timestep_spacing`. */
function ascendingTimesteps(config: PndmConfig, n: number): number[] {
  const train = config.num_train_timesteps;
  switch (config.timestep_spacing) {
    case "linspace":
      return linspace(0, train - 1, n).map(roundHalfEven);
    case "leading": {
      const ratio = Math.floor(train / n);
      return Array.from({ length: n }, (_, i) => i * ratio + config.steps_offset);
    }
    case "trailing":
      return arange(train, 0, -train / n)
        .map(roundHalfEven)
        .reverse()
        .map((t) => t - 1);
  }
}
