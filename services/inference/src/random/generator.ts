import { Mt19937 } from "./mt19937.js";

/**
 * A seeded Gaussian source that reproduces PyTorch's CPU `torch.randn(n, generator=torch.Generator().manual_seed(seed))`
 * for float32 tensors, so a seed gives the same latents here as in diffusers, on every platform and run.
 *
 * What torch does (aten/src/ATen/native/cpu/DistributionTemplates.h, core/DistributionsHelper.h,
 * core/TransformationHelper.h, core/MT19937RNGEngine.h), and so what this does:
 * - the engine is mt19937 seeded with the low 32 bits of the seed (`init_genrand`);
 * - n >= 16 (`normal_fill`): draw n float uniforms `(u32 & 0xffffff) / 2^24`, then Box-Muller each block of 16
 *   in place, pairing element j with j + 8 (cos to j, sin to j + 8); when n is not a multiple of 16, draw 16
 *   fresh uniforms into the last 16 slots and transform them again;
 * - n < 16: float64 Box-Muller per element from 53-bit uniforms (two engine words each), the sine half cached
 *   in the generator for the next small draw, each result rounded to float32.
 * The float32 transcendental results are the correctly rounded ones, as libm gives them to torch's portable
 * kernel (ARM, AVX-512 and generic builds). x86 builds whose best kernel is AVX2 use a polynomial log/sincos
 * (avx_mathfun.h) instead and can differ from those hosts, and from this, in the last bit of some values.
 */
export interface NoiseSource {
  /** `count` standard normal float32 values, as `torch.randn(count)` would draw them. */
  randn(count: number): Float32Array;
}

export interface GeneratorState {
  readonly algorithm: typeof ALGORITHM;
  /** The seed as a decimal string (seeds are up to 64 bits). */
  readonly seed: string;
  readonly words: number[];
  readonly index: number;
  /** torch's cached second Box-Muller value for small draws, or null. */
  readonly nextNormal: number | null;
}

export interface Generator extends NoiseSource {
  readonly seed: bigint;
  getState(): GeneratorState;
  setState(state: GeneratorState): void;
}

/** A seed or a saved generator state that cannot be used; `field` names the request field. */
export class GeneratorInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "GeneratorInputError";
  }
}

const ALGORITHM = "torch-cpu-mt19937";
const MAX_SEED = (1n << 64n) - 1n;
const TWO_PI = 2 * Math.PI;
const f32 = Math.fround;

export function createGenerator(seed: number | bigint): Generator {
  return new TorchCpuGenerator(toSeed(seed));
}

function toSeed(seed: number | bigint): bigint {
  if (typeof seed === "number" && !Number.isSafeInteger(seed)) {
    throw new GeneratorInputError("seed", `must be an integer, got ${seed}`);
  }
  const value = BigInt(seed);
  if (value < 0n || value > MAX_SEED) {
    throw new GeneratorInputError("seed", `must be in [0, 2^64), got ${value}`);
  }
  return value;
}

class TorchCpuGenerator implements Generator {
  private engine: Mt19937;
  private nextNormal: number | null = null;

  constructor(readonly seed: bigint) {
    this.engine = new Mt19937(Number(seed & 0xffffffffn));
  }

  randn(count: number): Float32Array {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new GeneratorInputError("count", `must be a non-negative integer, got ${count}`);
    }
    return count >= 16 ? this.normalFill(count) : this.normalSerial(count);
  }

  getState(): GeneratorState {
    const { words, index } = this.engine.getState();
    return { algorithm: ALGORITHM, seed: this.seed.toString(), words, index, nextNormal: this.nextNormal };
  }

  setState(state: GeneratorState): void {
    if (state?.algorithm !== ALGORITHM) {
      throw new GeneratorInputError("generator_state", `algorithm must be "${ALGORITHM}"`);
    }
    if (state.seed !== toSeed(BigInt(state.seed)).toString()) {
      throw new GeneratorInputError("generator_state", "seed must be the decimal form of the seed");
    }
    if (state.nextNormal !== null && !Number.isFinite(state.nextNormal)) {
      throw new GeneratorInputError("generator_state", "nextNormal must be a finite number or null");
    }
    const engine = new Mt19937(0);
    try {
      engine.setState(state);
    } catch (err) {
      throw new GeneratorInputError("generator_state", (err as Error).message);
    }
    if (toSeed(BigInt(state.seed)) !== this.seed) {
      throw new GeneratorInputError("generator_state", `was saved from seed ${state.seed}, not ${this.seed}`);
    }
    this.engine = engine;
    this.nextNormal = state.nextNormal;
  }

  /** torch's `uniform_real_distribution<float>(0, 1)`: the low 24 bits of one engine word. */
  private uniformFloat(): number {
    return (this.engine.nextUint32() & 0xffffff) / 16777216;
  }

  /** torch's `uniform_real_distribution<double>(0, 1)`: the low 53 bits of (word1 << 32 | word2). */
  private uniformDouble(): number {
    const hi = this.engine.nextUint32() & 0x1fffff;
    const lo = this.engine.nextUint32();
    return (hi * 4294967296 + lo) / 9007199254740992;
  }

  private normalFill(count: number): Float32Array {
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = this.uniformFloat();
    for (let i = 0; i + 16 <= count; i += 16) boxMuller16(data, i);
    if (count % 16 !== 0) {
      const start = count - 16;
      for (let i = 0; i < 16; i++) data[start + i] = this.uniformFloat();
      boxMuller16(data, start);
    }
    return data;
  }

  private normalSerial(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.normalDouble();
    return out;
  }

  /** torch's `normal_distribution<double>`, including its one-value cache. */
  private normalDouble(): number {
    if (this.nextNormal !== null) {
      const cached = this.nextNormal;
      this.nextNormal = null;
      return cached;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = TWO_PI * u1;
    this.nextNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

/** torch's `normal_fill_16` in float32: uniforms at j and j + 8 become two normals in place. */
function boxMuller16(data: Float32Array, offset: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f32(1 - (data[offset + j] as number));
    const u2 = data[offset + j + 8] as number;
    const radius = f32(Math.sqrt(f32(-2 * f32(Math.log(u1)))));
    const theta = f32(TWO_PI * u2);
    data[offset + j] = radius * f32(Math.cos(theta));
    data[offset + j + 8] = radius * f32(Math.sin(theta));
  }
}
