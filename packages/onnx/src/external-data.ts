import { realpathSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { TensorProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { ModelContractError } from "./model-contract-error.js";

/** Where an external tensor's bytes are, checked: a file inside the model's directory, in bounds. */
export interface ExternalRange {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * Resolves the external data entries of initializers (onnx/docs/ExternalData.md: `location` relative to
 * the model's directory, optional `offset` and `length`) and refuses, naming the model file and the tensor,
 * a location that is absolute or leads outside the directory (through `..` or a symlink), a missing file,
 * an offset or length past the end of the file, a length that does not match the tensor's dims and dtype,
 * and two tensors whose ranges overlap. `expectedBytes` gives each tensor's size from its dims and dtype.
 */
export function resolveExternalData(
  modelId: string,
  modelFile: string,
  dir: string,
  tensors: readonly { readonly tensor: TensorProto; readonly expectedBytes: number }[],
): Map<string, ExternalRange> {
  const fail = (tensor: string, problem: string): never => {
    throw new ModelContractError(modelId, `${modelFile}: tensor "${tensor}": external data ${problem}`);
  };
  const realDir = realpathSync(dir);
  const sizes = new Map<string, number>();
  const ranges = new Map<string, ExternalRange>();
  for (const { tensor, expectedBytes } of tensors) {
    const entries = new Map(tensor.externalData.map((e) => [e.key, e.value]));
    const location = entries.get("location");
    if (!location) fail(tensor.name, "has no location");
    const where = location as string;
    if (isAbsolute(where)) fail(tensor.name, `location ${JSON.stringify(where)} is absolute`);
    const file = resolve(dir, where);
    if (!inside(resolve(dir), file)) fail(tensor.name, `location ${JSON.stringify(where)} is outside ${dir}`);
    let size = sizes.get(file);
    if (size === undefined) {
      let real: string;
      try {
        real = realpathSync(file);
        size = statSync(real).size;
      } catch {
        return fail(tensor.name, `file ${JSON.stringify(where)} does not exist in ${dir}`);
      }
      if (!inside(realDir, real))
        fail(tensor.name, `location ${JSON.stringify(where)} leads outside ${dir} (to ${real})`);
      sizes.set(file, size);
    }
    const offset = integerEntry(entries.get("offset"), 0, (p) => fail(tensor.name, `offset ${p}`));
    const length = integerEntry(entries.get("length"), expectedBytes, (p) =>
      fail(tensor.name, `length ${p}`),
    );
    if (length !== expectedBytes)
      fail(tensor.name, `length ${length} does not match its dims and dtype (${expectedBytes} bytes)`);
    if (offset + length > size)
      fail(tensor.name, `range ${offset}..${offset + length} runs past the end of ${where} (${size} bytes)`);
    ranges.set(tensor.name, { file, offset, length });
  }
  checkOverlaps(ranges, (a, b) =>
    fail(b, `overlaps tensor "${a}" in ${relative(dir, ranges.get(a)?.file ?? "")}`),
  );
  return ranges;
}

function inside(dir: string, path: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

function integerEntry(value: string | undefined, fallback: number, fail: (problem: string) => never): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,15}$/.test(value)) return fail(`${JSON.stringify(value.slice(0, 32))} is not a byte count`);
  return Number(value);
}

/** Calls `fail(first, second)` for the first two tensors whose byte ranges in one file overlap. */
function checkOverlaps(ranges: ReadonlyMap<string, ExternalRange>, fail: (a: string, b: string) => never) {
  const byFile = new Map<string, [string, ExternalRange][]>();
  for (const entry of ranges) {
    const list = byFile.get(entry[1].file) ?? [];
    list.push(entry);
    byFile.set(entry[1].file, list);
  }
  for (const list of byFile.values()) {
    list.sort(([, a], [, b]) => a.offset - b.offset);
    for (let i = 1; i < list.length; i++) {
      const [prevName, prev] = list[i - 1] as [string, ExternalRange];
      const [name, range] = list[i] as [string, ExternalRange];
      if (range.length > 0 && prev.length > 0 && range.offset < prev.offset + prev.length)
        fail(prevName, name);
    }
  }
}
