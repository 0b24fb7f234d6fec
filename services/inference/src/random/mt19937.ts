/** The 32-bit Mersenne Twister (MT19937), seeded the way PyTorch's CPU generator seeds it (`init_genrand`). */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export interface Mt19937State {
  /** The 624 words of state, each in [0, 2^32). */
  readonly words: number[];
  /** How many words of the current block have been consumed (624 = regenerate before the next draw). */
  readonly index: number;
}

export class Mt19937 {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed32: number) {
    this.mt[0] = seed32 >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.mt[i - 1] as number;
      this.mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
  }

  /** The next 32-bit output, as an unsigned integer. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++] as number;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  getState(): Mt19937State {
    return { words: Array.from(this.mt), index: this.index };
  }

  setState(state: Mt19937State): void {
    if (!Array.isArray(state.words) || state.words.length !== N) {
      throw new RangeError(`mt19937 state needs ${N} words`);
    }
    if (!Number.isInteger(state.index) || state.index < 0 || state.index > N) {
      throw new RangeError(`mt19937 index must be an integer in [0, ${N}]`);
    }
    for (let i = 0; i < N; i++) {
      const w = state.words[i];
      if (typeof w !== "number" || !Number.isInteger(w) || w < 0 || w > 0xffffffff) {
        throw new RangeError(`mt19937 state word ${i} is not a 32-bit unsigned integer`);
      }
      this.mt[i] = w;
    }
    this.index = state.index;
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = ((mt[i] as number) & UPPER_MASK) | ((mt[(i + 1) % N] as number) & LOWER_MASK);
      let next = (mt[(i + M) % N] as number) ^ (y >>> 1);
      if (y & 1) next ^= MATRIX_A;
      mt[i] = next >>> 0;
    }
    this.index = 0;
  }
}
