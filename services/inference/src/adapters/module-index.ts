import type { AdapterComponent, AdapterTarget, ComponentModules } from "./adapter-target.js";
import { sgmModulePath, unetLayoutOf } from "./sgm-unet-names.js";

// Resolves the module names adapter files use against the modules this model has. A name is the
// module's own dotted path, or (UNet only) its SGM path; kohya-ss writes either with every "." as "_",
// which cannot be undone by rule (`to_q`, `transformer_blocks`, `self_attn` hold underscores), so, as
// kohya-ss and A1111 do, each of the model's module paths is flattened and the key looked up.

export type Resolution =
  | { readonly found: string }
  | { readonly ambiguous: readonly string[] }
  | { readonly missing: true };

export interface ModuleIndex {
  readonly component: AdapterComponent;
  readonly modules: ComponentModules;
  /** A dotted name: the module path itself or, for the UNet, its SGM path. */
  dotted(name: string): Resolution;
  /** A kohya-ss name: a dotted name with "." written as "_". */
  flat(name: string): Resolution;
}

const MISSING: Resolution = { missing: true };

function add(index: Map<string, string[]>, name: string, path: string): void {
  const paths = index.get(name);
  if (paths === undefined) index.set(name, [path]);
  else if (!paths.includes(path)) paths.push(path);
}

function lookup(index: ReadonlyMap<string, string[]>, name: string): Resolution {
  const paths = index.get(name);
  if (paths === undefined) return MISSING;
  return paths.length === 1 ? { found: paths[0] as string } : { ambiguous: paths };
}

export function createModuleIndex(
  component: AdapterComponent,
  modules: ComponentModules,
  unetLayersPerBlock: number,
): ModuleIndex {
  const dotted = new Map<string, string[]>();
  const flat = new Map<string, string[]>();
  const layout = component === "unet" ? unetLayoutOf(modules.keys(), unetLayersPerBlock) : undefined;
  for (const path of modules.keys()) {
    const names = [path];
    const sgm = layout === undefined ? undefined : sgmModulePath(path, layout);
    if (sgm !== undefined) names.push(sgm);
    for (const name of names) {
      add(dotted, name, path);
      add(flat, name.replaceAll(".", "_"), path);
    }
  }
  return {
    component,
    modules,
    dotted: (name) => lookup(dotted, name),
    flat: (name) => lookup(flat, name),
  };
}

/** One index per component the model has, built on first use. */
export function createModuleIndexes(
  target: AdapterTarget,
): (component: AdapterComponent) => ModuleIndex | undefined {
  const built = new Map<AdapterComponent, ModuleIndex>();
  return (component) => {
    const cached = built.get(component);
    if (cached !== undefined) return cached;
    const modules = target.components[component];
    if (modules === undefined) return undefined;
    const index = createModuleIndex(component, modules, target.unetLayersPerBlock);
    built.set(component, index);
    return index;
  };
}
