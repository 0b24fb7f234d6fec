/**
 * The fixtures of diffusers' tests/schedulers/test_schedulers.py (SchedulerCommonTest), built the same way
 * in float32 so that full denoising loops reproduce diffusers' asserted `result_sum` / `result_mean`.
 */
import type { Scheduler, StepOptions } from "../../src/schedulers/index.js";

const f32 = Math.fround;
const [BATCH, CHANNELS, HEIGHT, WIDTH] = [4, 3, 8, 8];

/**
 * `torch.arange(n)` (optionally flipped) reshaped to (C, H, W, N), divided by n, permuted to (N, C, H, W):
 * flattened NCHW, element (b, c, h, w) holds the arange value at ((c * H + h) * W + w) * N + b. The 1-D
 * variants (N, C, W) of some tests are the same with H = 1.
 */
function deterministic(flip: boolean, height = HEIGHT): Float32Array {
  const HEIGHT = height;
  const NUM_ELEMS = BATCH * CHANNELS * HEIGHT * WIDTH;
  const out = new Float32Array(NUM_ELEMS);
  let i = 0;
  for (let b = 0; b < BATCH; b++) {
    for (let c = 0; c < CHANNELS; c++) {
      for (let h = 0; h < HEIGHT; h++) {
        for (let w = 0; w < WIDTH; w++) {
          const k = ((c * HEIGHT + h) * WIDTH + w) * BATCH + b;
          out[i++] = (flip ? NUM_ELEMS - 1 - k : k) / NUM_ELEMS;
        }
      }
    }
  }
  return out;
}

export const dummySampleDeter = (): Float32Array => deterministic(false);
export const dummyNoiseDeter = (): Float32Array => deterministic(true);
/** The (4, 3, 8) samples of diffusers' 1-D test variants (e.g. UniPCMultistepScheduler1DTest). */
export const dummySampleDeter1d = (): Float32Array => deterministic(false, 1);
export const dummyNoiseDeter1d = (): Float32Array => deterministic(true, 1);
export const BATCH_SIZE = BATCH;

/** `dummy_model`: `sample * t / (t + 1)` in float32. */
export function dummyModel(sample: Float32Array, t: number): Float32Array {
  const tf = f32(t);
  const denominator = f32(tf + 1);
  return sample.map((x) => f32(x * tf) / denominator);
}

export function sumAbs(sample: Float32Array): number {
  return sample.reduce((acc, x) => acc + Math.abs(x), 0);
}

export function meanAbs(sample: Float32Array): number {
  return sumAbs(sample) / sample.length;
}

/** The loop most diffusers scheduler tests run: scale, model, step over every timestep. */
export function fullLoop(
  scheduler: Scheduler,
  sample: Float32Array,
  options: StepOptions = {},
  timesteps = scheduler.timesteps,
): Float32Array {
  let x = sample;
  for (const t of timesteps) {
    const input = scheduler.scaleModelInput(x, t);
    x = scheduler.step(dummyModel(input, t), t, input, options).prevSample;
  }
  return x;
}

/** The loop of the DPM-Solver family's tests: model(sample, t), then step, without input scaling. */
export function solverLoop(
  scheduler: Scheduler,
  sample: Float32Array,
  options: StepOptions = {},
  timesteps = scheduler.timesteps,
): Float32Array {
  let x = sample;
  for (const t of timesteps) x = scheduler.step(dummyModel(x, t), t, x, options).prevSample;
  return x;
}

/** The loop of EDM tests: the model sees the scaled sample, the step gets the unscaled one. */
export function preconditionedLoop(
  scheduler: Scheduler,
  sample: Float32Array,
  options: StepOptions = {},
): Float32Array {
  let x = sample;
  for (const t of scheduler.timesteps) {
    const output = dummyModel(scheduler.scaleModelInput(x, t), t);
    x = scheduler.step(output, t, x, options).prevSample;
  }
  return x;
}

export function scaled(sample: Float32Array, factor: number): Float32Array {
  const s = f32(factor);
  return sample.map((x) => x * s);
}
