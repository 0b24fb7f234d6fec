import { predictionTypeOption } from "./common-options.js";
import { checkSigmaSchedule, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { sigmaSpacingOf } from "./sigma-schedules.js";
import {
  combine,
  dpmSolverOutput,
  exp32,
  meanOfLearnedVariance,
  type NoiseLevel,
  scaledDifference,
} from "./solver-math.js";
import { interpolatedSigmas, respacedSolverSigmas, solverTimesteps } from "./solver-schedule.js";
import { SolverSchedulerBase } from "./solver-scheduler-base.js";
import { thresholdingOptions } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

// diffusers' DPMSolverSinglestepScheduler has no rescale_betas_zero_snr.
const { rescale_betas_zero_snr: _unsupported, ...singlestepNoiseOptions } = noiseScheduleOptions({
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  schedules: ["linear", "scaled_linear", "squaredcos_cap_v2"],
});

export const dpmSolverSinglestepOptions = {
  ...singlestepNoiseOptions,
  solver_order: {
    type: "integer",
    default: 2,
    min: 1,
    max: 3,
    description: "Single-step order: 2 for guided sampling (DPM++ 2S), 3 for unconditional.",
  },
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  algorithm_type: {
    type: "enum",
    values: ["dpmsolver++", "sde-dpmsolver++", "dpmsolver"],
    default: "dpmsolver++",
    aliases: { deis: "dpmsolver++" },
    description: "DPM-Solver++ (data prediction, ODE or SDE) or DPM-Solver (noise prediction).",
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
    default: false,
    description:
      "Use lower orders for the last steps (forced on for uneven step counts and a zero final sigma).",
  },
  ...sigmaScheduleOptions,
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
} as const satisfies OptionSpecs;

export type DpmSolverSinglestepConfig = ConfigOf<typeof dpmSolverSinglestepOptions>;

/**
 * diffusers' DPMSolverSinglestepScheduler (arXiv:2206.00927, 2211.01095): steps are grouped by the order
 * list (1, 2, 1, 2, … for order 2); a group of order k starts from the sample at its first step and uses the
 * model outputs of its k evaluations. With the defaults, DPM++ 2S; with sde-dpmsolver++, DPM++ 2S SDE (not A1111's "DPM++ SDE").
 */
export class DpmSolverSinglestepScheduler extends SolverSchedulerBase<DpmSolverSinglestepConfig> {
  readonly kind = "DPMSolverSinglestepScheduler";
  private readonly lambdas: Float32Array;
  private modelOutputs: (Float32Array | null)[];
  private groupSample: Float32Array | null = null;
  private orders: number[] = [];

  constructor(raw: unknown) {
    const config = parseConfig(dpmSolverSinglestepOptions, raw);
    checkSigmaSchedule(config);
    if (!config.algorithm_type.endsWith("++") && config.final_sigmas_type === "zero") {
      throw new SchedulerInputError(
        "final_sigmas_type",
        `"zero" is not supported with algorithm_type "${config.algorithm_type}"; use "sigma_min"`,
      );
    }
    const alphas = alphasCumprod({ ...config, rescale_betas_zero_snr: false });
    super(config, alphas);
    this.lambdas = alphas.map(
      (a) => f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))),
    );
    this.modelOutputs = new Array(config.solver_order).fill(null);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    const train = config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    const n = numInferenceSteps;
    const minLambda = config.lambda_min_clipped ?? Number.NEGATIVE_INFINITY;
    const clipped = Array.from(this.lambdas)
      .reverse()
      .findIndex((l) => l >= minLambda);
    // linspace(0, T - 1 - clipped_idx, n + 1): the same as the family's linspace spacing up to T - clipped_idx.
    let timesteps = solverTimesteps("linspace", train, n, 0, train - (clipped === -1 ? train : clipped));
    const spacing = sigmaSpacingOf(config);
    let sigmas: number[];
    if (spacing) ({ sigmas, timesteps } = respacedSolverSigmas(spacing, this.trainSigmas, n));
    else sigmas = interpolatedSigmas(timesteps, this.trainSigmas);
    const last = config.final_sigmas_type === "sigma_min" ? (this.trainSigmas[0] as number) : 0;
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, last]), n);
    this.modelOutputs = new Array(config.solver_order).fill(null);
    this.groupSample = null;
    // diffusers switches lower_order_final on (in its config) for uneven counts and a zero final sigma.
    const lowerOrderFinal =
      config.lower_order_final || n % config.solver_order !== 0 || config.final_sigmas_type === "zero";
    this.orders = orderList(n, config.solver_order, lowerOrderFinal, config.final_sigmas_type === "zero");
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    const output =
      this.config.variance_type === "none"
        ? modelOutput
        : meanOfLearnedVariance(modelOutput, sample, options?.batchSize ?? 1);
    this.checkStepInputs(output, sample);
    const index = this.startIndex(timestep);
    const converted = dpmSolverOutput(
      this.config,
      output,
      sample,
      this.levelAt(index),
      options?.batchSize ?? 1,
    );
    this.modelOutputs.shift();
    this.modelOutputs.push(converted);
    const noise =
      this.config.algorithm_type === "sde-dpmsolver++" ? this.noiseFor(options, sample.length) : null;
    let order = this.orders[index] ?? 1;
    while (this.modelOutputs[this.modelOutputs.length - order] == null) order--;
    if (order === 1) this.groupSample = sample;
    const start = this.groupSample ?? sample;
    let prevSample: Float32Array;
    if (order === 1) prevSample = this.firstOrderUpdate(converted, start, index, noise);
    else if (order === 2) prevSample = this.secondOrderUpdate(start, index, noise);
    else prevSample = this.thirdOrderUpdate(start, index, noise);
    this.index = index + 1;
    return this.config.algorithm_type.endsWith("++")
      ? { prevSample, predOriginalSample: converted }
      : { prevSample };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return {
      modelOutputs: this.modelOutputs,
      sample: this.groupSample,
      orders: Float32Array.from(this.orders),
    };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { modelOutputs, sample, orders } = memory;
    if (
      !Array.isArray(modelOutputs) ||
      modelOutputs.length !== this.config.solver_order ||
      !(sample === null || sample instanceof Float32Array) ||
      !(orders instanceof Float32Array)
    ) {
      throw new SchedulerInputError(
        "state",
        `needs modelOutputs (${this.config.solver_order}), sample and orders`,
      );
    }
    this.modelOutputs = modelOutputs;
    this.groupSample = sample;
    this.orders = Array.from(orders);
  }

  /** Noise levels at the step's target and at the `back + 1` sigmas its group started from. */
  private levels(index: number, back: number): NoiseLevel[] {
    return Array.from({ length: back + 2 }, (_, k) => this.levelAt(index + 1 - k));
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
    }
  }

  /** The second step of an order-2 group, from the group's start sample over both sigma intervals. */
  private secondOrderUpdate(x: Float32Array, index: number, noise: Float32Array | null): Float32Array {
    const [t, s0, s1] = this.levels(index, 1) as [NoiseLevel, NoiseLevel, NoiseLevel];
    const [m1, m0] = this.modelOutputs.slice(-2) as [Float32Array, Float32Array];
    const h = f32(t.lambda - s1.lambda);
    const r0 = f32(f32(s0.lambda - s1.lambda) / h);
    const d0 = m1;
    const d1 = scaledDifference(m0, m1, f32(1 / r0));
    const midpoint = this.config.solver_type === "midpoint";
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const c0 = f32(t.alpha * f32(exp32(-h) - 1));
        const c1 = midpoint ? f32(-f32(0.5 * c0)) : f32(t.alpha * f32(f32(f32(exp32(-h) - 1) / h) + 1));
        return combine(x, f32(t.sigma / s1.sigma), [d0, f32(-c0)], [d1, c1]);
      }
      case "dpmsolver": {
        const c0 = f32(t.sigma * f32(exp32(h) - 1));
        const c1 = midpoint ? f32(0.5 * c0) : f32(t.sigma * f32(f32(f32(exp32(h) - 1) / h) - 1));
        return combine(x, f32(t.alpha / s1.alpha), [d0, f32(-c0)], [d1, f32(-c1)]);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const c0 = f32(t.alpha * f32(1 - e2));
        const c1 = midpoint ? f32(0.5 * c0) : f32(t.alpha * f32(f32(f32(1 - e2) / f32(-2 * h)) + 1));
        return combine(
          x,
          f32(f32(t.sigma / s1.sigma) * exp32(-h)),
          [d0, c0],
          [d1, c1],
          [noise as Float32Array, f32(t.sigma * f32(Math.sqrt(f32(1 - e2))))],
        );
      }
    }
  }

  /** The third step of an order-3 group. */
  private thirdOrderUpdate(x: Float32Array, index: number, noise: Float32Array | null): Float32Array {
    const [t, s0, s1, s2] = this.levels(index, 2) as [NoiseLevel, NoiseLevel, NoiseLevel, NoiseLevel];
    const [m2, m1, m0] = this.modelOutputs.slice(-3) as [Float32Array, Float32Array, Float32Array];
    const h = f32(t.lambda - s2.lambda);
    const r0 = f32(f32(s0.lambda - s2.lambda) / h);
    const r1 = f32(f32(s1.lambda - s2.lambda) / h);
    const d0 = m2;
    const d10 = scaledDifference(m1, m2, f32(1 / r1));
    const d11 = scaledDifference(m0, m2, f32(1 / r0));
    const rDiff = f32(r0 - r1);
    const d1 = d10.map((a, i) => f32(f32(f32(r0 * a) - f32(r1 * (d11[i] as number))) / rDiff));
    const d2 = d11.map((b, i) => f32(f32(2 * f32(b - (d10[i] as number))) / rDiff));
    const hh = f32(h * h);
    const midpoint = this.config.solver_type === "midpoint";
    switch (this.config.algorithm_type) {
      case "dpmsolver++": {
        const em1 = f32(exp32(-h) - 1);
        const c0 = f32(-f32(t.alpha * em1));
        const c1 = f32(t.alpha * f32(f32(em1 / h) + 1));
        const scale = f32(t.sigma / s2.sigma);
        if (midpoint) return combine(x, scale, [d0, c0], [d11, c1]);
        const c2 = f32(-f32(t.alpha * f32(f32(f32(em1 + h) / hh) - 0.5)));
        return combine(x, scale, [d0, c0], [d1, c1], [d2, c2]);
      }
      case "dpmsolver": {
        const ep1 = f32(exp32(h) - 1);
        const c0 = f32(-f32(t.sigma * ep1));
        const c1 = f32(-f32(t.sigma * f32(f32(ep1 / h) - 1)));
        const scale = f32(t.alpha / s2.alpha);
        if (midpoint) return combine(x, scale, [d0, c0], [d11, c1]);
        const c2 = f32(-f32(t.sigma * f32(f32(f32(ep1 - h) / hh) - 0.5)));
        return combine(x, scale, [d0, c0], [d1, c1], [d2, c2]);
      }
      case "sde-dpmsolver++": {
        const e2 = exp32(f32(-2 * h));
        const minus2h = f32(-2 * h);
        const c0 = f32(t.alpha * f32(1 - e2));
        const c1 = f32(t.alpha * f32(f32(f32(1 - e2) / minus2h) + 1));
        const cn = f32(t.sigma * f32(Math.sqrt(f32(1 - e2))));
        const scale = f32(f32(t.sigma / s2.sigma) * exp32(-h));
        if (midpoint) return combine(x, scale, [d0, c0], [d11, c1], [noise as Float32Array, cn]);
        const c2 = f32(t.alpha * f32(f32(f32(f32(1 - e2) + minus2h) / f32(minus2h * minus2h)) - 0.5));
        return combine(x, scale, [d0, c0], [d1, c1], [d2, c2], [noise as Float32Array, cn]);
      }
    }
  }
}

/** diffusers' `get_order_list`: the order of each step, groups of 1, 2, (3) with lower orders at the end. */
export function orderList(
  steps: number,
  order: number,
  lowerOrderFinal: boolean,
  zeroFinal: boolean,
): number[] {
  const repeat = (pattern: number[], times: number) => Array.from({ length: times }, () => pattern).flat();
  let orders: number[];
  if (lowerOrderFinal) {
    if (order === 3) {
      if (steps % 3 === 0) orders = [...repeat([1, 2, 3], steps / 3 - 1), 1, 2, 1];
      else if (steps % 3 === 1) orders = [...repeat([1, 2, 3], Math.floor(steps / 3)), 1];
      else orders = [...repeat([1, 2, 3], Math.floor(steps / 3)), 1, 2];
    } else if (order === 2) {
      if (steps % 2 === 0) orders = [...repeat([1, 2], steps / 2 - 1), 1, 1];
      else orders = [...repeat([1, 2], Math.floor(steps / 2)), 1];
    } else orders = repeat([1], steps);
  } else if (order === 3) orders = repeat([1, 2, 3], Math.floor(steps / 3));
  else if (order === 2) orders = repeat([1, 2], Math.floor(steps / 2));
  else orders = repeat([1], steps);
  if (zeroFinal && orders.length > 0) orders[orders.length - 1] = 1;
  return orders;
}
