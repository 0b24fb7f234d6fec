import { isFloatDtype, openSafetensors, type SafetensorsFile, type TensorInfo } from "@dmesh/safetensors";
import { AdapterFileError, asAdapterError, quote } from "./adapter-errors.js";
import { ADAPTER_COMPONENTS, type AdapterComponent, type AdapterTarget } from "./adapter-target.js";
import { groupLoraKeys, type LoraModuleKeys } from "./lora-keys.js";
import { createModuleIndexes, type Resolution } from "./module-index.js";
import { peftScaling } from "./peft-metadata.js";

// Everything about a LoRA set is checked here, from the files' headers and alpha scalars, before any
// weight is read or multiplied: a set either applies whole or is refused naming the file and key, never
// in part. The arithmetic (lora-deltas.ts) then only reads and multiplies.

export interface LoraRequest {
  /** The name the request used (the file's stem). */
  readonly name: string;
  readonly path: string;
  /** Multiplier for the UNet's modules. */
  readonly unetWeight: number;
  /** Multiplier for the text encoders' modules. */
  readonly textEncoderWeight: number;
}

/** One LoRA's contribution to one module: factor · up·down. */
export interface LoraTerm {
  readonly file: SafetensorsFile;
  readonly downKey: string;
  readonly upKey: string;
  readonly rank: number;
  /** weight · alpha / rank: alpha from the `.alpha` key, or PEFT's metadata; without either, scale 1. */
  readonly factor: number;
}

export interface PlannedModule {
  readonly component: AdapterComponent;
  /** The module path in the model (see AdapterTarget). */
  readonly module: string;
  /** The module's weight shape, which the delta has. */
  readonly shape: readonly number[];
  readonly terms: readonly LoraTerm[];
}

export interface LoraPlan {
  /** Modules with at least one non-zero term, by component then path. Empty when every weight is 0. */
  readonly modules: readonly PlannedModule[];
  /** Modules each request's file adapts (weight 0 included), in request order. */
  readonly adaptedModules: readonly number[];
  /** Closes the files the plan reads from. */
  close(): Promise<void>;
}

/** Why `down`/`up` cannot adapt a module of weight shape `target`, or undefined when they fit. */
function fitProblem(
  target: readonly number[],
  down: TensorInfo,
  up: TensorInfo,
): { part: "down" | "up"; problem: string } | undefined {
  const where = `module weight [${target.join(", ")}]`;
  if (target.length !== 2 && target.length !== 4) {
    return { part: "down", problem: `adapts a ${where}, which is neither Linear nor Conv2d` };
  }
  const [out, inputs, kh = 1, kw = 1] = target as [number, number, number?, number?];
  const d = down.shape;
  const rank = d[0] ?? 0;
  const downFits =
    rank > 0 &&
    d[1] === inputs &&
    ((d.length === 2 && kh === 1 && kw === 1) || (d.length === 4 && d[2] === kh && d[3] === kw));
  const hint = " (a LoRA made for another base model?)";
  if (!downFits) return { part: "down", problem: `shape [${d.join(", ")}] does not fit ${where}${hint}` };
  const u = up.shape;
  const upFits =
    u[0] === out && u[1] === rank && (u.length === 2 || (u.length === 4 && u[2] === 1 && u[3] === 1));
  if (!upFits)
    return { part: "up", problem: `shape [${u.join(", ")}] does not fit ${where} at rank ${rank}${hint}` };
  return undefined;
}

function resolve(file: string, group: LoraModuleKeys, resolution: Resolution): string {
  if ("found" in resolution) return resolution.found;
  if ("ambiguous" in resolution) {
    const modules = resolution.ambiguous.join(", ");
    throw new AdapterFileError(file, `matches several ${group.component} modules: ${modules}`, group.downKey);
  }
  throw new AdapterFileError(file, `matches no ${group.component} module of this model`, group.downKey);
}

async function readAlpha(file: SafetensorsFile, key: string): Promise<number> {
  const { data } = await file.readFloat(key);
  const value = data[0];
  if (data.length !== 1 || value === undefined || !Number.isFinite(value)) {
    throw new AdapterFileError(file.path, "alpha is not one finite number", key);
  }
  return value;
}

/** One file's term for one module. */
interface FileTerm extends Omit<PlannedModule, "terms"> {
  readonly term: LoraTerm;
}

/** Checks one LoRA file against the model and returns its terms by module id. */
async function planFile(
  request: LoraRequest,
  file: SafetensorsFile,
  indexOf: ReturnType<typeof createModuleIndexes>,
): Promise<Map<string, FileTerm>> {
  const path = request.path;
  const out = new Map<string, FileTerm>();
  const claimedBy = new Map<string, string>();
  const peft = peftScaling(file);
  for (const group of groupLoraKeys(path, file.tensors.keys())) {
    const index = indexOf(group.component);
    if (index === undefined) {
      throw new AdapterFileError(
        path,
        `adapts the ${group.component}, which this model does not have`,
        group.downKey,
      );
    }
    const module = resolve(path, group, group.flat ? index.flat(group.name) : index.dotted(group.name));
    const id = `${group.component}.${module}`;
    const earlier = claimedBy.get(id);
    if (earlier !== undefined) {
      throw new AdapterFileError(
        path,
        `adapts ${group.component} module ${module}, as ${quote(earlier)} already does`,
        group.downKey,
      );
    }
    claimedBy.set(id, group.downKey);
    const down = file.info(group.downKey);
    const up = file.info(group.upKey);
    for (const [key, info] of [
      [group.downKey, down],
      [group.upKey, up],
    ] as const) {
      if (!isFloatDtype(info.dtype))
        throw new AdapterFileError(path, `dtype ${info.dtype} is not F16, BF16 or F32`, key);
    }
    const shape = (index.modules.get(module) as { shape: readonly number[] }).shape;
    const misfit = fitProblem(shape, down, up);
    if (misfit !== undefined) {
      throw new AdapterFileError(
        path,
        `${misfit.problem}: module ${module}`,
        misfit.part === "down" ? group.downKey : group.upKey,
      );
    }
    const rank = down.shape[0] as number;
    const scale =
      group.alphaKey !== undefined
        ? (await readAlpha(file, group.alphaKey)) / rank
        : group.layout === "peft" && peft !== undefined
          ? peft.scale(group.component, module, rank)
          : 1;
    const weight = group.component === "unet" ? request.unetWeight : request.textEncoderWeight;
    const term: LoraTerm = { file, downKey: group.downKey, upKey: group.upKey, rank, factor: weight * scale };
    out.set(id, { component: group.component, module, shape, term });
  }
  return out;
}

/**
 * Opens every file of a LoRA set and checks every key against `target`: layout and family, the module
 * it names, shapes, alphas. Throws an AdapterFileError (FAILED_PRECONDITION) naming the file and key
 * for the first problem, with all files closed; otherwise returns the plan, whose files stay open until
 * `close()`. Terms whose factor is 0 (weight 0, alpha 0) are left out, so weight 0 changes nothing.
 */
export async function planLoraSet(
  requests: readonly LoraRequest[],
  target: AdapterTarget,
): Promise<LoraPlan> {
  const files: SafetensorsFile[] = [];
  const close = async () => {
    await Promise.all(files.map((f) => f.close()));
  };
  try {
    const indexOf = createModuleIndexes(target);
    const modules = new Map<string, Omit<PlannedModule, "terms"> & { terms: LoraTerm[] }>();
    const adaptedModules: number[] = [];
    for (const request of requests) {
      for (const [which, weight] of [
        ["unet", request.unetWeight],
        ["text encoder", request.textEncoderWeight],
      ] as const) {
        if (!Number.isFinite(weight))
          throw new RangeError(`LoRA "${request.name}": ${which} weight ${weight} is not finite`);
      }
      const file = await asAdapterError(() => openSafetensors(request.path));
      files.push(file);
      const planned = await asAdapterError(() => planFile(request, file, indexOf));
      adaptedModules.push(planned.size);
      for (const [id, { component, module, shape, term }] of planned) {
        if (term.factor === 0) continue;
        const entry = modules.get(id) ?? { component, module, shape, terms: [] };
        entry.terms.push(term);
        modules.set(id, entry);
      }
    }
    const order = (c: AdapterComponent) => ADAPTER_COMPONENTS.indexOf(c);
    const sorted = [...modules.values()].sort(
      (a, b) =>
        order(a.component) - order(b.component) || (a.module < b.module ? -1 : a.module > b.module ? 1 : 0),
    );
    return { modules: sorted, adaptedModules, close };
  } catch (error) {
    await close();
    throw error;
  }
}
