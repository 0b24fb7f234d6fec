import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { checkSigmaSchedule, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import { linspace, roundHalfEven } from "./numpy-numerics.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { SchedulerBase } from "./scheduler-base.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { logSigmas, sigmaSpacingOf, sigmaToT, trainingSigmas } from "./sigma-schedules.js";
import {
  combine,
  dpmSolverOutput,
  exp32,
  meanOfLearnedVariance,
  type NoiseLevel,
  noiseLevel,
  scaledDifference,
} from "./solver-math.js";
import { interpolatedSigmas, respacedSolverSigmas, solverTimesteps } from "./solver-schedule.js";
import { thresholdingOptions } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

export const dpmSolverMultistepOptions = {
  ...noiseScheduleOptions({
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: "linear",
    schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
  }),
  solver_order: {
    type: "integer",
    default: 2,
    min: 1,
    max: 3,
    description: "Multistep order: 2 for guided sampling (DPM++ 2M), 3 for unconditional.",
  },
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  algorithm_type: {
    type: "enum",
    values: ["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"],
    default: "dpmsolver++",
    aliases: { deis: "dpmsolver++" },
    description: "DPM-Solver++ (data prediction) or DPM-Solver (noise prediction), ODE or SDE.",
  },
  solver_type: {
    type: "enum",
    values: ["midpoint", "heun"],
    default: "midpoint",
    aliases: { logrho: "midpoint", bh1: "midpoint", bh2: "midpoint" },
    description: "Second-order update rule.",
  },
  lower_order_final: {
    type: "boolean",
    default: true,
    description: "Use lower orders for the last steps when there are fewer than 15 steps.",
  },
  euler_at_final: {
    type: "boolean",
    default: false,
    description: "Use a first-order (Euler) update for the last step.",
  },
  ...sigmaScheduleOptions,
  use_lu_lambdas: {
    type: "boolean",
    default: false,
    description: "Space steps uniformly in log-SNR (Lu's DPM-Solver).",
  },
  final_sigmas_type: {
    type: "enum",
    values: ["zero", "sigma_min"],
    default: "zero",
    description: "The sigma after the last step: 0, or the smallest training sigma.",
  },
  lambda_min_clipped: {
    type: "number?",
    default: null,
    description: "Drop timesteps whose log-SNR is below this (null = -inf); helps cosine schedules.",
  },
  variance_type: {
    type: "enum",
    values: ["none", "learned", "learned_range"],
    default: "none",
    description: "learned / learned_range: the model also outputs variance channels, which are dropped.",
  },
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
} as const satisfies OptionSpecs;

export type DpmSolverMultistepConfig = ConfigOf<typeof dpmSolverMultistepOptions>;

/**
 * diffusers' DPMSolverMultistepScheduler (arXiv:2206.00927, 2211.01095): with the defaults, DPM++ 2M;
 * with use_karras_sigmas, "DPM++ 2M Karras"; with sde-dpmsolver++, DPM++ 2M SDE.
 */
export class DpmSolverMultistepScheduler extends SchedulerBase<DpmSolverMultistepConfig> {
  readonly kind = "DPMSolverMultistepScheduler";
  private readonly trainSigmas: Float32Array;
  private readonly lambdas: Float32Array;
  private modelOutputs: (Float32Array | null)[];
  private lowerOrderNums = 0;

  constructor(raw: unknown) {
    const config = parseConfig(dpmSolverMultistepOptions, raw);
    checkSigmaSchedule(config);
    const sde = config.algorithm_type.startsWith("sde-");
    if (!config.algorithm_type.endsWith("++") && config.final_sigmas_type === "zero") {
      throw new SchedulerInputError(
        "final_sigmas_type",
        `"zero" is not supported with algorithm_type "${config.algorithm_type}"; use "sigma_min"`,
      );
    }
    if (sde && config.solver_order === 3) {
      throw new SchedulerInputError("solver_order", "the SDE variants support orders 1 and 2");
    }
    super(config);
    const alphas = alphasCumprod(config);
    if (config.rescale_betas_zero_snr) alphas[alphas.length - 1] = 2 ** -24;
    this.trainSigmas = trainingSigmas(alphas);
    this.lambdas = alphas.map(
      (a) => f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))),
    );
    this.modelOutputs = new Array(config.solver_order).fill(null);
  }

  get initNoiseSigma(): number {
    return 1;
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    const train = config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    const n = numInferenceSteps;
    // Clip the smallest log-SNRs (searchsorted over the increasing flipped lambdas).
    const minLambda = config.lambda_min_clipped ?? Number.NEGATIVE_INFINITY;
    const clipped = Array.from(this.lambdas)
      .reverse()
      .findIndex((l) => l >= minLambda);
    const lastTimestep = train - (clipped === -1 ? train : clipped);
    let timesteps = solverTimesteps(config.timestep_spacing, train, n, config.steps_offset, lastTimestep);
    const spacing = sigmaSpacingOf(config);
    let sigmas: number[];
    if (config.use_lu_lambdas) {
      const logTrain = logSigmas(this.trainSigmas);
      sigmas = linspace(logTrain[logTrain.length - 1] as number, logTrain[0] as number, n).map(Math.exp);
      const exact = sigmas.map((s) => sigmaToT(s, logTrain));
      timesteps = exact.map(config.beta_schedule === "squaredcos_cap_v2" ? Math.trunc : roundHalfEven);
    } else if (spacing) {
      // diffusers leaves cosine-schedule Karras timesteps unrounded (then truncated to int64).
      const roundKarras = config.beta_schedule !== "squaredcos_cap_v2";
      ({ sigmas, timesteps } = respacedSolverSigmas(spacing, this.trainSigmas, n, { roundKarras }));
    } else {
      sigmas = interpolatedSigmas(timesteps, this.trainSigmas);
    }
    const last = config.final_sigmas_type === "sigma_min" ? (this.trainSigmas[0] as number) : 0;
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, last]), timesteps.length);
    this.modelOutputs = new Array(config.solver_order).fill(null);
    this.lowerOrderNums = 0;
  }

  scaleModelInput(sample: Float32Array, _timestep: number): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    const output =
      this.config.variance_type === "none"
        ? modelOutput
        : meanOfLearnedVariance(modelOutput, sample, options?.batchSize ?? 1);
    this.checkStepInputs(output, sample);
    if (this.index === null) this.index = this.begin ?? this.dpmIndexForTimestep(timestep);
    const index = this.index;
    const { config } = this;
    const count = this.schedule.length;
    const lowerOrderFinal =
      index === count - 1 &&
      (config.euler_at_final ||
        (config.lower_order_final && count < 15) ||
        config.final_sigmas_type === "zero");
    const lowerOrderSecond = index === count - 2 && config.lower_order_final && count < 15;

    const converted = dpmSolverOutput(
      this.config,
      output,
      sample,
      noiseLevel(this.sigmaSchedule?.[index] as number),
      options?.batchSize ?? 1,
    );
    this.modelOutputs.shift();
    this.modelOutputs.push(converted);
    const noise = config.algorithm_type.startsWith("sde-") ? this.noiseFor(options, sample.length) : null;

    let prevSample: Float32Array;
    if (config.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      prevSample = this.firstOrderUpdate(converted, sample, index, noise);
    } else if (config.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      prevSample = this.secondOrderUpdate(sample, index, noise);
    } else {
      prevSample = this.thirdOrderUpdate(sample, index);
    }
    if (this.lowerOrderNums < config.solver_order) this.lowerOrderNums++;
    this.index = index + 1;
    return config.algorithm_type.endsWith("++")
      ? { prevSample, predOriginalSample: converted }
      : { prevSample };
  }

  addNoise(original: Float32Array, noise: Float32Array, timestep: number): Float32Array {
    if (noise.length !== original.length) {
      throw new SchedulerInputError(
        "noise",
        `has ${noise.length} values but the sample has ${original.length}`,
      );
    }
    if (this.sigmaSchedule === null)
      throw new SchedulerInputError("num_inference_steps", "call setTimesteps first");
    const index = this.begin === null ? this.dpmIndexForTimestep(timestep) : (this.index ?? this.begin);
    const level = noiseLevel(this.sigmaSchedule[index] as number);
    return original.map((x, i) => f32(level.alpha * x) + f32(level.sigma * (noise[i] as number)));
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return { modelOutputs: this.modelOutputs, lowerOrderNums: this.lowerOrderNums };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const outputs = memory.modelOutputs;
    const nums = memory.lowerOrderNums;
    if (!Array.isArray(outputs) || outputs.length !== this.config.solver_order || typeof nums !== "number") {
      throw new SchedulerInputError(
        "state",
        `needs modelOutputs (${this.config.solver_order}) and lowerOrderNums`,
      );
    }
    this.modelOutputs = outputs;
    this.lowerOrderNums = nums;
  }

  /** diffusers' DPM `index_for_timestep`: like the others, but a timestep not in the schedule means the last. */
  private dpmIndexForTimestep(timestep: number): number {
    return this.schedule.includes(timestep) ? this.indexForTimestep(timestep) : this.schedule.length - 1;
  }

  /** The data prediction x0 (DPM-Solver++) or the noise prediction (DPM-Solver) from the model output. */
  private levels(index: number, back: number): NoiseLevel[] {
    const sigmas = this.sigmaSchedule as Float32Array;
    return Array.from({ length: back + 2 }, (_, k) => noiseLevel(sigmas[index + 1 - k] as number));
  }

  private firstOrderUpdate(
    m: Float32Array,
    x: Float32Array,
    index: number,
    noise: Float32Array | null,
  ): Float32Array {
    const [t, s] = this.levels(index, 0) as [NoiseLevel, NoiseLevel];
    const h = f32(t.lambda - s.lambda);
    switch (this.config.algorithm_type) {
      case "dpmsolver++":
        return combine(x, f32(t.sigma / s.sigma), [m, f32(-f32(t.alpha * f32(exp32(-h) - 1)))]);
      case "dpmsolver":
        return combine(x, f32(t.alpha / s.alpha), [m, f32(-f32(t.sigma * f32(exp32(h) - 1)))]);
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        return combine(
          x,
          f32(f32(t.sigma / s.sigma) * exp32(-h)),
          [m, f32(t.alpha * f32(1 - e2))],
          [noise as Float32Array, f32(t.sigma * f32(Math.sqrt(f32(1 - e2))))],
        );
      }
      case "sde-dpmsolver":
        return combine(
          x,
          f32(t.alpha / s.alpha),
          [m, f32(-f32(2 * f32(t.sigma * f32(exp32(h) - 1))))],
          [noise as Float32Array, f32(t.sigma * f32(Math.sqrt(f32(exp32(f32(2 * h)) - 1))))],
        );
    }
  }

  private secondOrderUpdate(x: Float32Array, index: number, noise: Float32Array | null): Float32Array {
    const [t, s0, s1] = this.levels(index, 1) as [NoiseLevel, NoiseLevel, NoiseLevel];
    const [m1, m0] = this.modelOutputs.slice(-2) as [Float32Array, Float32Array];
    const h = f32(t.lambda - s0.lambda);
    const r0 = f32(f32(s0.lambda - s1.lambda) / h);
    const d1 = scaledDifference(m0, m1, f32(1 / r0));
    const midpoint = this.config.solver_type === "midpoint";
    const em1 = f32(exp32(-h) - 1);
    const ep1 = f32(exp32(h) - 1);
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const c0 = f32(t.alpha * em1);
        const c1 = midpoint ? f32(-f32(0.5 * c0)) : f32(t.alpha * f32(f32(em1 / h) + 1));
        return combine(x, f32(t.sigma / s0.sigma), [m0, f32(-c0)], [d1, c1]);
      }
      case "dpmsolver": {
        const c0 = f32(t.sigma * ep1);
        const c1 = midpoint ? f32(0.5 * c0) : f32(t.sigma * f32(f32(ep1 / h) - 1));
        return combine(x, f32(t.alpha / s0.alpha), [m0, f32(-c0)], [d1, f32(-c1)]);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const c0 = f32(t.alpha * f32(1 - e2));
        const c1 = midpoint ? f32(0.5 * c0) : f32(t.alpha * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1));
        const cn = f32(t.sigma * f32(Math.sqrt(f32(1 - e2))));
        return combine(
          x,
          f32(f32(t.sigma / s0.sigma) * exp32(-h)),
          [m0, c0],
          [d1, c1],
          [noise as Float32Array, cn],
        );
      }
      case "sde-dpmsolver": {
        const c0 = f32(2 * f32(t.sigma * ep1));
        const c1 = midpoint ? f32(t.sigma * ep1) : f32(2 * f32(t.sigma * f32(f32(ep1 / h) - 1)));
        const cn = f32(t.sigma * f32(Math.sqrt(f32(exp32(f32(2 * h)) - 1))));
        return combine(
          x,
          f32(t.alpha / s0.alpha),
          [m0, f32(-c0)],
          [d1, f32(-c1)],
          [noise as Float32Array, cn],
        );
      }
    }
  }

  private thirdOrderUpdate(x: Float32Array, index: number): Float32Array {
    const [t, s0, s1, s2] = this.levels(index, 2) as [NoiseLevel, NoiseLevel, NoiseLevel, NoiseLevel];
    const [m2, m1, m0] = this.modelOutputs.slice(-3) as [Float32Array, Float32Array, Float32Array];
    const h = f32(t.lambda - s0.lambda);
    const r0 = f32(f32(s0.lambda - s1.lambda) / h);
    const r1 = f32(f32(s1.lambda - s2.lambda) / h);
    const d10 = scaledDifference(m0, m1, f32(1 / r0));
    const d11 = scaledDifference(m1, m2, f32(1 / r1));
    const d1Weight = f32(r0 / f32(r0 + r1));
    const d1 = d10.map((a, i) => a + f32(d1Weight * f32(a - (d11[i] as number))));
    const d2 = scaledDifference(d10, d11, f32(1 / f32(r0 + r1)));
    const hh = f32(h * h);
    if (this.config.algorithm_type === "dpmsolver++") {
      const em1 = f32(exp32(-h) - 1);
      return combine(
        x,
        f32(t.sigma / s0.sigma),
        [m0, f32(-f32(t.alpha * em1))],
        [d1, f32(t.alpha * f32(f32(em1 / h) + 1))],
        [d2, f32(-f32(t.alpha * f32(f32(f32(em1 + h) / hh) - 0.5)))],
      );
    }
    const ep1 = f32(exp32(h) - 1);
    return combine(
      x,
      f32(t.alpha / s0.alpha),
      [m0, f32(-f32(t.sigma * ep1))],
      [d1, f32(-f32(t.sigma * f32(f32(ep1 / h) - 1)))],
      [d2, f32(-f32(t.sigma * f32(f32(f32(ep1 - h) / hh) - 0.5)))],
    );
  }
}
