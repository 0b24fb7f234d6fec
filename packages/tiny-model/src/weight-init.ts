import { createRandomStream } from "./seeded-random.js";

/** Seeded weight values, one independent stream per parameter name. */
export interface WeightInit {
  /**
   * `count` values from U(-b, b) with b = std·√3, i.e. mean 0 and standard deviation `std` (the shape of
   * PyTorch's default Linear/Conv init). Layers pass std = gain/√fan_in so activations keep their scale.
   */
  uniform(name: string, count: number, std: number): Float32Array;
}

export function createWeightInit(seed: number): WeightInit {
  return {
    uniform(name, count, std) {
      const next = createRandomStream(seed, name);
      const bound = std * Math.sqrt(3);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * bound;
      return out;
    },
  };
}
