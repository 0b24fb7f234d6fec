import type { Scheduler } from "../schedulers/index.js";
import { roundHalfEven } from "../schedulers/numpy-numerics.js";

/**
 * SDXL's "ensemble of expert denoisers": the base model runs the noisy part of the schedule
 * (`denoising_end`), the refiner the rest (`denoising_start`, the same fraction), the latents passing
 * between them undecoded. These are diffusers' own cut rules, so that the two halves run exactly the steps
 * StableDiffusionXLPipeline and StableDiffusionXLImg2ImgPipeline run.
 */

/** `int(round(num_train_timesteps - fraction * num_train_timesteps))`, Python's round being half-to-even. */
export function timestepCutoff(fraction: number, scheduler: Scheduler): number {
  const train = Number(scheduler.config.num_train_timesteps ?? 1000);
  return roundHalfEven(train - fraction * train);
}

/** StableDiffusionXLPipeline's `denoising_end`: how many of `timesteps` (in order) the base runs. */
export function baseStepCount(timesteps: readonly number[], fraction: number, scheduler: Scheduler): number {
  const cutoff = timestepCutoff(fraction, scheduler);
  return timesteps.filter((t) => t >= cutoff).length;
}

/**
 * StableDiffusionXLImg2ImgPipeline.get_timesteps with `denoising_start`: the refiner's scheduler (already
 * `setTimesteps`) starts at the first timestep below the cut, one earlier for a second-order scheduler whose
 * count would otherwise split a step pair. Returns the timesteps the refiner runs.
 */
export function refinerTimesteps(scheduler: Scheduler, fraction: number): number[] {
  const timesteps = scheduler.timesteps;
  const cutoff = timestepCutoff(fraction, scheduler);
  let count = timesteps.filter((t) => t < cutoff).length;
  if (scheduler.order === 2 && count % 2 === 0) count++;
  count = Math.min(count, timesteps.length);
  if (count === 0) return [];
  scheduler.setBeginIndex(timesteps.length - count);
  return timesteps.slice(timesteps.length - count);
}
