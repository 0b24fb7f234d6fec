import { predictionTypeOption, stepsOffsetOption, timestepSpacingOption } from "./common-options.js";
import { checkSigmaSchedule, sigmaScheduleOptions } from "./euler-scheduler.js";
import { alphasCumprod, noiseScheduleOptions } from "./noise-schedule.js";
import type { SolverMemoryValue, StepOptions, StepResult } from "./scheduler.js";
import { type ConfigOf, type OptionSpecs, parseConfig, SchedulerInputError } from "./scheduler-config.js";
import { sigmaSpacingOf } from "./sigma-schedules.js";
import { dataPrediction, type NoiseLevel, noisePrediction } from "./solver-math.js";
import { interpolatedSigmas, respacedSolverSigmas, solverTimesteps } from "./solver-schedule.js";
import { SolverSchedulerBase } from "./solver-scheduler-base.js";
import { thresholdingOptions, thresholdSample } from "./thresholding.js";
import { f32 } from "./torch-numerics.js";

export const unipcOptions = {
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
    description: "UniPC order: 2 for guided sampling, 3 for unconditional.",
  },
  prediction_type: predictionTypeOption(["epsilon", "sample", "v_prediction"]),
  ...thresholdingOptions,
  predict_x0: {
    type: "boolean",
    default: true,
    description:
      "Solve in the data prediction (UniPC with DPM-Solver++ style updates) or the noise prediction.",
  },
  solver_type: {
    type: "enum",
    values: ["bh1", "bh2"],
    default: "bh2",
    aliases: { midpoint: "bh2", heun: "bh2", logrho: "bh2" },
    description: "B(h) of the UniPC paper: bh1 = h (for unconditional), bh2 = e^h - 1 (for guided sampling).",
  },
  lower_order_final: {
    type: "boolean",
    default: true,
    description: "Use lower orders for the last steps.",
  },
  disable_corrector: {
    type: "number[]",
    default: null,
    allowEmpty: true,
    description:
      "Step indices after which the UniC corrector is skipped (e.g. [0] for a large guidance scale).",
  },
  ...sigmaScheduleOptions,
  sigma_min: { type: "number?", default: null, min: 0, description: "Lowest sigma of respaced sigmas." },
  sigma_max: { type: "number?", default: null, min: 0, description: "Highest sigma of respaced sigmas." },
  timestep_spacing: timestepSpacingOption("linspace"),
  steps_offset: stepsOffsetOption,
  final_sigmas_type: {
    type: "enum",
    values: ["zero", "sigma_min"],
    default: "zero",
    description: "The sigma after the last step: 0, or the smallest sigma.",
  },
} as const satisfies OptionSpecs;

export type UnipcConfig = ConfigOf<typeof unipcOptions>;

/**
 * diffusers' UniPCMultistepScheduler (arXiv:2302.04867): a multistep predictor (UniP) whose result is refined,
 * once the next model output is known, by the corrector (UniC) at the start of the next step. bh1 and bh2
 * choose B(h); `disable_corrector` lists the steps whose corrector is skipped.
 */
export class UnipcScheduler extends SolverSchedulerBase<UnipcConfig> {
  readonly kind = "UniPCMultistepScheduler";
  private modelOutputs: (Float32Array | null)[];
  private lowerOrderNums = 0;
  private lastSample: Float32Array | null = null;
  private thisOrder = 1;

  constructor(raw: unknown) {
    const config = parseConfig(unipcOptions, raw);
    checkSigmaSchedule(config);
    if (config.disable_corrector?.some((i) => !Number.isInteger(i))) {
      throw new SchedulerInputError("disable_corrector", "must list step indices (integers)");
    }
    const alphas = alphasCumprod(config);
    if (config.rescale_betas_zero_snr) alphas[alphas.length - 1] = 2 ** -24;
    super(config, alphas);
    this.modelOutputs = new Array(config.solver_order).fill(null);
  }

  setTimesteps(numInferenceSteps: number): void {
    const { config } = this;
    const train = config.num_train_timesteps;
    this.checkInferenceSteps(numInferenceSteps, train);
    const n = numInferenceSteps;
    let timesteps = solverTimesteps(config.timestep_spacing, train, n, config.steps_offset);
    const spacing = sigmaSpacingOf(config);
    let sigmas: number[];
    let sigmaMin: number;
    if (spacing) {
      ({ sigmas, timesteps } = respacedSolverSigmas(spacing, this.trainSigmas, n, {
        sigmaMin: config.sigma_min,
        sigmaMax: config.sigma_max,
      }));
      sigmaMin = sigmas[sigmas.length - 1] as number;
    } else {
      sigmas = interpolatedSigmas(timesteps, this.trainSigmas);
      sigmaMin = this.trainSigmas[0] as number;
    }
    const last = config.final_sigmas_type === "sigma_min" ? sigmaMin : 0;
    this.resetSchedule(timesteps, Float32Array.from([...sigmas, last]), timesteps.length);
    this.modelOutputs = new Array(config.solver_order).fill(null);
    this.lowerOrderNums = 0;
    this.lastSample = null;
    this.thisOrder = 1;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, options?: StepOptions): StepResult {
    this.checkStepInputs(modelOutput, sample);
    const index = this.startIndex(timestep);
    const { config } = this;
    const useCorrector =
      index > 0 && !(config.disable_corrector ?? []).includes(index - 1) && this.lastSample !== null;
    const converted = this.convertModelOutput(modelOutput, sample, index, options?.batchSize ?? 1);
    let x = sample;
    if (useCorrector)
      x = this.correct(converted, this.lastSample as Float32Array, sample, index, this.thisOrder);
    this.modelOutputs.shift();
    this.modelOutputs.push(converted);
    const wanted = config.lower_order_final
      ? Math.min(config.solver_order, this.schedule.length - index)
      : config.solver_order;
    this.thisOrder = Math.min(wanted, this.lowerOrderNums + 1);
    this.lastSample = x;
    const prevSample = this.predict(x, index, this.thisOrder);
    if (this.lowerOrderNums < config.solver_order) this.lowerOrderNums++;
    this.index = index + 1;
    return config.predict_x0 ? { prevSample, predOriginalSample: converted } : { prevSample };
  }

  protected override saveMemory(): Record<string, SolverMemoryValue> {
    return {
      modelOutputs: this.modelOutputs,
      lowerOrderNums: this.lowerOrderNums,
      lastSample: this.lastSample,
      thisOrder: this.thisOrder,
    };
  }

  protected override restoreMemory(memory: Readonly<Record<string, SolverMemoryValue>>): void {
    const { modelOutputs, lowerOrderNums, lastSample, thisOrder } = memory;
    if (
      !Array.isArray(modelOutputs) ||
      modelOutputs.length !== this.config.solver_order ||
      typeof lowerOrderNums !== "number" ||
      typeof thisOrder !== "number" ||
      !(lastSample === null || lastSample instanceof Float32Array)
    ) {
      throw new SchedulerInputError(
        "state",
        `needs modelOutputs (${this.config.solver_order}), lowerOrderNums, lastSample and thisOrder`,
      );
    }
    this.modelOutputs = modelOutputs;
    this.lowerOrderNums = lowerOrderNums;
    this.lastSample = lastSample;
    this.thisOrder = thisOrder;
  }

  private convertModelOutput(
    output: Float32Array,
    sample: Float32Array,
    index: number,
    batch: number,
  ): Float32Array {
    const { config } = this;
    const level = this.levelAt(index);
    if (!config.predict_x0) return noisePrediction(config.prediction_type, output, sample, level);
    const x0 = dataPrediction(config.prediction_type, output, sample, level);
    return config.thresholding ? thresholdSample(x0, batch, config) : x0;
  }

  /** diffusers' `multistep_uni_p_bh_update`: the predictor from the sample at `index` to `index + 1`. */
  private predict(x: Float32Array, index: number, order: number): Float32Array {
    const t = this.levelAt(index + 1);
    const s0 = this.levelAt(index);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1] as Float32Array;
    const { rks, differences } = this.history(s0, t, index, order);
    const c = this.coefficients(s0, t, rks, order);
    let residual: Float32Array | null = null;
    if (differences.length > 0) {
      const rhos =
        order === 2
          ? [0.5]
          : solveF32(
              c.r.slice(0, -1).map((row) => row.slice(0, -1)),
              c.b.slice(0, -1),
            );
      residual = weightedSum(rhos, differences);
    }
    return this.update(x, m0, t, s0, c, residual);
  }

  /** diffusers' `multistep_uni_c_bh_update`: corrects `this_sample` (at `index`) with its model output. */
  private correct(
    modelT: Float32Array,
    lastSample: Float32Array,
    thisSample: Float32Array,
    index: number,
    order: number,
  ): Float32Array {
    const t = this.levelAt(index);
    const s0 = this.levelAt(index - 1);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1] as Float32Array;
    const { rks, differences } = this.history(s0, t, index - 1, order);
    const c = this.coefficients(s0, t, rks, order);
    const rhos = order === 1 ? [0.5] : solveF32(c.r, c.b);
    const corrector = weightedSum(rhos.slice(0, -1), differences);
    const lastRho = f32(rhos[rhos.length - 1] as number);
    const combined = thisSample.map((_, i) => {
      const d1t = f32((modelT[i] as number) - (m0[i] as number));
      const base = corrector ? (corrector[i] as number) : 0;
      return f32(base + f32(lastRho * d1t));
    });
    return this.update(lastSample, m0, t, s0, c, combined);
  }

  /** rk = (lambda_si - lambda_s0) / h and D1 = (m_i - m0) / rk for the `order - 1` earlier outputs. */
  private history(
    s0: NoiseLevel,
    t: NoiseLevel,
    s0Index: number,
    order: number,
  ): { rks: number[]; differences: Float32Array[] } {
    const h = f32(t.lambda - s0.lambda);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1] as Float32Array;
    const rks: number[] = [];
    const differences: Float32Array[] = [];
    for (let i = 1; i < order; i++) {
      const si = this.levelAt(s0Index - i);
      const mi = this.modelOutputs[this.modelOutputs.length - 1 - i] as Float32Array;
      const rk = f32(f32(si.lambda - s0.lambda) / h);
      rks.push(rk);
      differences.push(mi.map((v, j) => f32(v - (m0[j] as number)) / rk));
    }
    rks.push(1);
    return { rks, differences };
  }

  /** hh, h*phi_1(hh), B(h) and the order conditions R rho = b of the UniPC paper. */
  private coefficients(s0: NoiseLevel, t: NoiseLevel, rks: number[], order: number) {
    const h = f32(t.lambda - s0.lambda);
    const hh = this.config.predict_x0 ? -h : h;
    const hPhi1 = f32(Math.expm1(hh));
    const bh = this.config.solver_type === "bh1" ? hh : hPhi1;
    let hPhiK = f32(f32(hPhi1 / hh) - 1);
    let factorial = 1;
    const r: number[][] = [];
    const b: number[] = [];
    for (let i = 1; i <= order; i++) {
      r.push(rks.map((rk) => (i === 1 ? 1 : f32(rk ** (i - 1)))));
      b.push(f32(f32(hPhiK * factorial) / bh));
      factorial *= i + 1;
      hPhiK = f32(f32(hPhiK / hh) - f32(1 / factorial));
    }
    return { hPhi1, bh, r, b };
  }

  /** x_t = (sigma_t / sigma_s0) x - alpha_t h phi_1 m0 - alpha_t B(h) residual (or the noise-prediction form). */
  private update(
    x: Float32Array,
    m0: Float32Array,
    t: NoiseLevel,
    s0: NoiseLevel,
    c: { hPhi1: number; bh: number },
    residual: Float32Array | null,
  ): Float32Array {
    const x0 = this.config.predict_x0;
    const scale = x0 ? f32(t.sigma / s0.sigma) : f32(t.alpha / s0.alpha);
    const lead = x0 ? t.alpha : t.sigma;
    const mCoeff = f32(lead * c.hPhi1);
    const rCoeff = f32(lead * c.bh);
    return x.map((v, i) => {
      const predicted = f32(f32(scale * v) - f32(mCoeff * (m0[i] as number)));
      return residual ? f32(predicted - f32(rCoeff * (residual[i] as number))) : predicted;
    });
  }
}

/** sum_k w_k * D_k elementwise in float32 (`torch.einsum("k,bkc...->bc...")`), or null when empty. */
function weightedSum(weights: readonly number[], tensors: readonly Float32Array[]): Float32Array | null {
  const first = tensors[0];
  if (!first) return null;
  const w = weights.map(f32);
  return first.map((_, i) => {
    let acc = 0;
    for (let k = 0; k < tensors.length; k++) {
      acc = f32(acc + f32((w[k] as number) * ((tensors[k] as Float32Array)[i] as number)));
    }
    return acc;
  });
}

/** `torch.linalg.solve` for the small order-condition systems: Gaussian elimination, partial pivoting. */
function solveF32(matrix: readonly (readonly number[])[], rhs: readonly number[]): number[] {
  const n = rhs.length;
  const a = matrix.map((row, i) => [...row.slice(0, n), rhs[i] as number]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let row = col + 1; row < n; row++) {
      if (Math.abs((a[row] as number[])[col] as number) > Math.abs((a[pivot] as number[])[col] as number)) {
        pivot = row;
      }
    }
    [a[col], a[pivot]] = [a[pivot] as number[], a[col] as number[]];
    const p = a[col] as number[];
    for (let row = col + 1; row < n; row++) {
      const r = a[row] as number[];
      const factor = (r[col] as number) / (p[col] as number);
      for (let k = col; k <= n; k++) r[k] = (r[k] as number) - factor * (p[k] as number);
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let row = n - 1; row >= 0; row--) {
    const r = a[row] as number[];
    let sum = r[n] as number;
    for (let k = row + 1; k < n; k++) sum -= (r[k] as number) * (x[k] as number);
    x[row] = f32(sum / (r[row] as number));
  }
  return x;
}
