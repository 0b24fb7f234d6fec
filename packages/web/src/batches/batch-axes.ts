import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { BatchAxisSchema } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { SCHEDULER_FAMILIES } from "@dmesh/spec/scheduler-table";
import { InputError } from "../api/call-error.js";
import { axisValueJson } from "../generate/spec-form.js";

type Fragment = MessageInitShape<typeof GenerationSpecSchema>;

/** An axis a batch can vary: the spec field (proto JSON path) and how a typed value becomes that field. */
export interface AxisKind {
  readonly label: string;
  readonly path: string;
  readonly hint: string;
  readonly multiline: boolean;
  readonly fragment: (value: string) => Fragment;
}

function int(value: string, path: string): number {
  if (!/^-?\d+$/.test(value)) throw new InputError(path, `"${value.slice(0, 20)}" is not a whole number`);
  return Number(value);
}

function num(value: string, path: string): number {
  const n = Number(value);
  if (value === "" || !Number.isFinite(n))
    throw new InputError(path, `"${value.slice(0, 20)}" is not a number`);
  return n;
}

export const AXIS_KINDS = {
  prompt: {
    label: "Prompt",
    path: "conditioning.prompt",
    hint: "one prompt per line",
    multiline: true,
    fragment: (v) => ({ conditioning: { prompt: v } }),
  },
  negativePrompt: {
    label: "Negative prompt",
    path: "conditioning.negativePrompt",
    hint: "one per line",
    multiline: true,
    fragment: (v) => ({ conditioning: { negativePrompt: v } }),
  },
  seed: {
    label: "Seed",
    path: "params.seed",
    hint: "comma-separated, e.g. 1, 2, 3",
    multiline: false,
    fragment: (v) => {
      if (!/^\d{1,20}$/.test(v)) throw new InputError("params.seed", `"${v.slice(0, 24)}" is not a seed`);
      return { params: { seed: BigInt(v) } };
    },
  },
  cfg: {
    label: "CFG scale",
    path: "params.guidanceScale",
    hint: "comma-separated, e.g. 5, 7.5",
    multiline: false,
    fragment: (v) => ({ params: { guidanceScale: num(v, "params.guidanceScale") } }),
  },
  steps: {
    label: "Steps",
    path: "scheduler.steps",
    hint: "comma-separated, e.g. 10, 20",
    multiline: false,
    fragment: (v) => ({ scheduler: { steps: int(v, "scheduler.steps") } }),
  },
  // One field per axis: the scheduler family (its options, e.g. an SDE variant, come from the base).
  sampler: {
    label: "Sampler",
    path: "scheduler.kind",
    hint: `comma-separated: ${SCHEDULER_FAMILIES.map((f) => f.label).join(", ")}`,
    multiline: false,
    fragment: (v) => {
      const family = SCHEDULER_FAMILIES.find((f) => f.label.toLowerCase() === v.toLowerCase());
      if (!family) throw new InputError("scheduler.kind", `"${v.slice(0, 20)}" is not a sampler`);
      return { scheduler: { kind: family.kind } };
    },
  },
} satisfies Record<string, AxisKind>;

export type AxisKindName = keyof typeof AXIS_KINDS;

export interface AxisRow {
  readonly kind: AxisKindName;
  readonly text: string;
}

/** The rows as BatchAxis messages; a value that does not fit throws a InputError naming `axes[i]`. */
export function axesOf(rows: readonly AxisRow[]): MessageInitShape<typeof BatchAxisSchema>[] {
  return rows.map((row, i) => {
    const kind: AxisKind = AXIS_KINDS[row.kind];
    const values = row.text
      .split(kind.multiline ? /\n/ : /,/)
      .map((v) => v.trim())
      .filter(Boolean);
    if (values.length === 0) throw new InputError(`axes[${i}].values_json`, "needs at least one value");
    try {
      return { field: kind.path, valuesJson: values.map((v) => axisValueJson(kind.path, kind.fragment(v))) };
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`axes[${i}].values_json`, err.message);
      throw err;
    }
  });
}
