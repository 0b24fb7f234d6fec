import {
  create,
  fromBinary,
  fromJson,
  type JsonObject,
  type JsonValue,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { type GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { BatchAxis } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { InvalidArgumentError, quote } from "@dmesh/runtime/errors";
import { checkName } from "@dmesh/spec";

/** Largest number of items one batch may hold. */
export const MAX_BATCH_ITEMS = 1000;

/**
 * The specs of a batch: explicit items merged over `base` (protobuf merge: set fields win), or the
 * cartesian product of `axes` applied to `base`, e.g. prompts x seeds x guidance scales. An axis over a
 * LoRA's weight is `adapters.<name>.weight` (or `.textEncoderWeight`): it sets that entry of `adapters`,
 * adding it when the base has none, so one batch compares a LoRA at several strengths.
 */
export function expandBatch(
  base: GenerationSpec | undefined,
  items: GenerationSpec[],
  axes: BatchAxis[],
): GenerationSpec[] {
  const baseSpec = base ?? create(GenerationSpecSchema);
  if (items.length > 0 && axes.length > 0)
    throw new InvalidArgumentError("axes", "give either items or axes, not both");
  if (items.length > 0) {
    if (items.length > MAX_BATCH_ITEMS)
      throw new InvalidArgumentError("items", `at most ${MAX_BATCH_ITEMS} items`);
    const baseBytes = toBinary(GenerationSpecSchema, baseSpec);
    return items.map((item) => {
      const itemBytes = toBinary(GenerationSpecSchema, item);
      const merged = new Uint8Array(baseBytes.length + itemBytes.length);
      merged.set(baseBytes);
      merged.set(itemBytes, baseBytes.length);
      return fromBinary(GenerationSpecSchema, merged);
    });
  }
  if (axes.length === 0) return [baseSpec];

  const baseJson = toJson(GenerationSpecSchema, baseSpec) as JsonObject;
  const values = axes.map((axis, a) => {
    if (!axis.field) throw new InvalidArgumentError(`axes[${a}].field`, "is required");
    checkName(axis.field, `axes[${a}].field`);
    if (axis.valuesJson.length === 0)
      throw new InvalidArgumentError(`axes[${a}].values_json`, "needs at least one value");
    return axis.valuesJson.map((raw, v) => {
      const field = `axes[${a}].values_json[${v}]`;
      let value: JsonValue;
      try {
        value = JSON.parse(raw) as JsonValue;
      } catch {
        throw new InvalidArgumentError(field, `is not JSON: ${quote(raw)}`);
      }
      // Each value is tried alone on the base, so a misfit names its own axis and value.
      const json = structuredClone(baseJson);
      setPath(json, axis.field, value);
      try {
        fromJson(GenerationSpecSchema, json);
      } catch (err) {
        throw new InvalidArgumentError(
          field,
          `does not fit spec field ${quote(axis.field)}: ${(err as Error).message}`,
        );
      }
      return value;
    });
  });
  const total = values.reduce((n, v) => n * v.length, 1);
  if (total > MAX_BATCH_ITEMS)
    throw new InvalidArgumentError("axes", `the product has ${total} items; at most ${MAX_BATCH_ITEMS}`);

  const out: GenerationSpec[] = [];
  for (let i = 0; i < total; i++) {
    const json = structuredClone(baseJson);
    let rest = i;
    for (let a = axes.length - 1; a >= 0; a--) {
      const list = values[a] ?? [];
      setPath(json, axes[a]?.field ?? "", list[rest % list.length] ?? null);
      rest = Math.floor(rest / list.length);
    }
    out.push(fromJson(GenerationSpecSchema, json));
  }
  return out;
}

/** `adapters.<name>.weight`: the LoRA name may itself hold dots; the last key is the weight field. */
const ADAPTER_WEIGHT = /^adapters\.(.+)\.(weight|textEncoderWeight|text_encoder_weight)$/;

function setAdapterWeight(target: JsonObject, name: string, key: string, value: JsonValue): void {
  const list = Array.isArray(target.adapters) ? [...target.adapters] : [];
  const at = list.findIndex((a) => typeof a === "object" && a !== null && (a as JsonObject).name === name);
  const entry = { ...((at >= 0 ? list[at] : { name }) as JsonObject) };
  entry[key === "weight" ? "weight" : "textEncoderWeight"] = value;
  if (at >= 0) list[at] = entry;
  else list.push(entry);
  target.adapters = list;
}

function setPath(target: JsonObject, path: string, value: JsonValue): void {
  const adapter = ADAPTER_WEIGHT.exec(path);
  if (adapter) {
    setAdapterWeight(target, adapter[1] as string, adapter[2] as string, value);
    return;
  }
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as JsonObject;
  }
  node[keys[keys.length - 1] ?? ""] = value;
}
