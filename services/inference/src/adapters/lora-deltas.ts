import { asAdapterError } from "./adapter-errors.js";
import type { AdapterComponent } from "./adapter-target.js";
import type { LoraPlan, PlannedModule } from "./lora-plan.js";

/** The change one LoRA set makes to one module's weight: W' = W + delta, in PyTorch layout. */
export interface ModuleDelta {
  readonly component: AdapterComponent;
  readonly module: string;
  readonly shape: readonly number[];
  readonly delta: Float32Array;
}

export interface DeltaOptions {
  /** Checked between modules: a delta is computed whole or not at all. */
  readonly signal?: AbortSignal;
}

/**
 * delta += factor · up·down, with up read as [out, rank] and down as [rank, in·kh·kw] (a Linear's
 * [rank, in], a 1×1 conv's [rank, in, 1, 1], a LoCon 3×3 down's [rank, in, 3, 3] with its up
 * [out, rank, 1, 1]), which is the delta in the module's own [out, in(, kh, kw)] layout. Each output
 * row is summed in float64 in `row` (reused, length ≥ in·kh·kw) and added to the delta once; four
 * ranks go through each pass over the row, which halves the time of one rank per pass.
 */
export function addScaledProduct(
  delta: Float32Array,
  up: Float32Array,
  down: Float32Array,
  rank: number,
  factor: number,
  row: Float64Array,
): void {
  const columns = (down.length / rank) | 0;
  const rows = (up.length / rank) | 0;
  for (let o = 0; o < rows; o++) {
    row.fill(0, 0, columns);
    const u = o * rank;
    let r = 0;
    for (; r + 4 <= rank; r += 4) {
      const a0 = up[u + r] as number;
      const a1 = up[u + r + 1] as number;
      const a2 = up[u + r + 2] as number;
      const a3 = up[u + r + 3] as number;
      const d0 = r * columns;
      const d1 = d0 + columns;
      const d2 = d1 + columns;
      const d3 = d2 + columns;
      for (let j = 0; j < columns; j++) {
        row[j] =
          (row[j] as number) +
          a0 * (down[d0 + j] as number) +
          a1 * (down[d1 + j] as number) +
          a2 * (down[d2 + j] as number) +
          a3 * (down[d3 + j] as number);
      }
    }
    for (; r < rank; r++) {
      const a = up[u + r] as number;
      const d = r * columns;
      for (let j = 0; j < columns; j++) row[j] = (row[j] as number) + a * (down[d + j] as number);
    }
    const out = o * columns;
    for (let j = 0; j < columns; j++)
      delta[out + j] = (delta[out + j] as number) + factor * (row[j] as number);
  }
}

async function moduleDelta(planned: PlannedModule, row: Float64Array): Promise<Float32Array> {
  const count = planned.shape.reduce((a, b) => a * b, 1);
  const delta = new Float32Array(count);
  for (const term of planned.terms) {
    const [down, up] = await asAdapterError(() =>
      Promise.all([term.file.readFloat(term.downKey), term.file.readFloat(term.upKey)]),
    );
    addScaledProduct(delta, up.data, down.data, term.rank, term.factor, row);
  }
  return delta;
}

/**
 * The deltas of a checked plan, one module at a time, so only one module's delta and factors are held
 * at once; the caller adds each to its weight (or collects them). Reads happen here, all checks before.
 */
export async function* loraDeltas(plan: LoraPlan, options: DeltaOptions = {}): AsyncGenerator<ModuleDelta> {
  let row = new Float64Array(0);
  for (const planned of plan.modules) {
    options.signal?.throwIfAborted();
    const columns = planned.shape.slice(1).reduce((a, b) => a * b, 1);
    if (row.length < columns) row = new Float64Array(columns);
    const delta = await moduleDelta(planned, row);
    yield { component: planned.component, module: planned.module, shape: planned.shape, delta };
  }
}
