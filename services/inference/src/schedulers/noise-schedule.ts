import type { EnumOption, OptionSpecs } from "./scheduler-config.js";
import { SchedulerInputError } from "./scheduler-config.js";
import { cumprodF32, f32, linspaceF32 } from "./torch-numerics.js";

/** The beta schedules diffusers knows; "exp" is HeunDiscreteScheduler's extra. */
export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2" | "exp";

export interface NoiseScheduleConfig {
  readonly num_train_timesteps: number;
  readonly beta_start: number;
  readonly beta_end: number;
  readonly beta_schedule: BetaSchedule;
  readonly trained_betas: readonly number[] | null;
  readonly rescale_betas_zero_snr: boolean;
}

/** The scheduler_config.json keys that define the training noise schedule, with one scheduler's defaults. */
export function noiseScheduleOptions<S extends BetaSchedule>(defaults: {
  beta_start: number;
  beta_end: number;
  beta_schedule: S;
  schedules: readonly S[];
}) {
  return {
    num_train_timesteps: {
      type: "integer",
      default: 1000,
      min: 1,
      description: "Number of diffusion steps the model was trained with.",
    },
    beta_start: {
      type: "number",
      default: defaults.beta_start,
      min: 0,
      description: "First beta of the schedule.",
    },
    beta_end: {
      type: "number",
      default: defaults.beta_end,
      min: 0,
      description: "Last beta of the schedule.",
    },
    beta_schedule: {
      type: "enum",
      values: defaults.schedules,
      default: defaults.beta_schedule,
      description: "How betas go from beta_start to beta_end.",
    } as EnumOption<S>,
    trained_betas: {
      type: "number[]",
      default: null,
      description: "Explicit betas, one per training step; overrides beta_start/beta_end/beta_schedule.",
    },
    rescale_betas_zero_snr: {
      type: "boolean",
      default: false,
      description: "Rescale betas to zero terminal SNR (arXiv:2305.08891).",
    },
  } as const satisfies OptionSpecs;
}

/** diffusers' `alphas_cumprod` as float32, from the betas its constructor builds. */
export function alphasCumprod(config: NoiseScheduleConfig): Float32Array {
  let betas = betasFor(config);
  if (config.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  return cumprodF32(betas.map((b) => 1 - b));
}

function betasFor(config: NoiseScheduleConfig): Float32Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas !== null) {
    if (config.trained_betas.length !== n) {
      throw new SchedulerInputError(
        "trained_betas",
        `has ${config.trained_betas.length} values but num_train_timesteps is ${n}`,
      );
    }
    return Float32Array.from(config.trained_betas);
  }
  switch (config.beta_schedule) {
    case "linear":
      return linspaceF32(config.beta_start, config.beta_end, n);
    case "scaled_linear":
      // "very specific to the latent diffusion model": linear in sqrt(beta), squared in float32.
      return linspaceF32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n).map((b) => b * b);
    case "squaredcos_cap_v2":
      return betasForAlphaBar(n, (t) => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2);
    case "exp":
      return betasForAlphaBar(n, (t) => Math.exp(t * -12.0));
  }
}

/** diffusers' `betas_for_alpha_bar`: computed in float64, then stored as float32. */
function betasForAlphaBar(n: number, alphaBar: (t: number) => number, maxBeta = 0.999): Float32Array {
  const betas = new Float32Array(n);
  for (let i = 0; i < n; i++) betas[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return betas;
}

/** diffusers' `rescale_zero_terminal_snr` (arXiv:2305.08891, Algorithm 1), in float32 as torch runs it. */
function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const sqrtBar = cumprodF32(betas.map((b) => 1 - b)).map(Math.sqrt);
  const first = sqrtBar[0] as number;
  const last = sqrtBar[sqrtBar.length - 1] as number;
  const scale = f32(first / f32(first - last));
  const bar = sqrtBar.map((v) => {
    const shifted = f32(f32(v - last) * scale);
    return shifted * shifted;
  });
  return bar.map((v, i) => (i === 0 ? 1 - v : 1 - f32(v / (bar[i - 1] as number))));
}

/** alpha_prod at an integer training step, as DDIM and LCM index `alphas_cumprod` by timestep. */
export function alphaProdAt(alphas: Float32Array, timestep: number): number {
  const value = Number.isInteger(timestep) ? alphas[timestep] : undefined;
  if (value === undefined) {
    throw new SchedulerInputError(
      "timestep",
      `must be an integer training step in [0, ${alphas.length}), got ${timestep}`,
    );
  }
  return value;
}

/** DDPM-style noising, x_t = sqrt(alpha_prod) x_0 + sqrt(1 - alpha_prod) noise, in float32. */
export function addNoiseByAlpha(
  original: Float32Array,
  noise: Float32Array,
  alphaProd: number,
): Float32Array {
  if (noise.length !== original.length) {
    throw new SchedulerInputError(
      "noise",
      `has ${noise.length} values but the sample has ${original.length}`,
    );
  }
  const a = f32(Math.sqrt(alphaProd));
  const b = f32(Math.sqrt(f32(1 - alphaProd)));
  return original.map((x, i) => f32(a * x) + f32(b * (noise[i] as number)));
}
