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
 * row is summed in float64 over the rank in `row` (reused, length in·kh·kw) and added once.
 */
export function addScaledProduct(
  delta: Float32Array,
  up: Float32Array,
  down: Float32Array,
  rank: number,
  factor: number,
  row: Float64Array,
): void {
  const columns = down.length / rank;
  const rows = up.length / rank;
  for (let o = 0; o < rows; o++) {
    row.fill(0, 0, columns);
    const upRow = o * rank;
    for (let r = 0; r < rank; r++) {
      const a = up[upRow + r] as number;
      if (a === 0) continue;
      const downRow = r * columns;
      for (let j = 0; j < columns; j++) row[j] = (row[j] as number) + a * (down[downRow + j] as number);
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
