import type { SafetensorsFile } from "@dmesh/safetensors";
import { AdapterFileError } from "./adapter-errors.js";
import type { AdapterComponent } from "./adapter-target.js";

// PEFT files carry no `.alpha` tensors: since diffusers 0.34 `save_lora_weights` stores each component's
// PEFT LoraConfig as JSON in the safetensors metadata under `lora_adapter_metadata`, keys prefixed with
// the component (`unet.lora_alpha`, `unet.alpha_pattern`, `text_encoder.use_rslora`, …; a model's own
// `save_lora_adapter` writes them unprefixed). PEFT scales a module by lora_alpha / r, or
// lora_alpha / √r with rsLoRA, where `alpha_pattern` may give a module its own alpha and r is the
// module's rank (what its lora_A tensor holds). Without that metadata diffusers sets alpha = r: scale 1.

export const PEFT_METADATA_KEY = "lora_adapter_metadata";

export interface PeftScaling {
  /** alpha/rank (or alpha/√rank) for a module of `rank` at `module` path in `component`. */
  scale(component: AdapterComponent, module: string, rank: number): number;
}

/** PEFT's LoraConfig default, which a config that names no lora_alpha gets. */
const PEFT_DEFAULT_ALPHA = 8;

interface ComponentConfig {
  /** Undefined when the metadata has no config for the component: then alpha = r, as diffusers derives. */
  readonly alpha?: number;
  readonly rsLora: boolean;
  readonly alphaPattern: ReadonlyMap<string, number>;
}

/** Pattern keys that are plain module names; PEFT reads them as regular expressions, which we do not run. */
const PLAIN_NAME = /^[\w.]+$/;

function config(
  file: SafetensorsFile,
  json: Record<string, unknown>,
  component: AdapterComponent,
): ComponentConfig {
  const keys = Object.keys(json);
  const prefixed = keys.some((k) => k.startsWith(`${component}.`));
  const get = (name: string) => json[prefixed ? `${component}.${name}` : name];
  const present = prefixed || keys.some((k) => !/^(unet|text_encoder|text_encoder_2)\./.test(k));
  const refuse = (what: string): never => {
    throw new AdapterFileError(file.path, `${PEFT_METADATA_KEY}: ${what}`, "__metadata__");
  };
  const alpha = get("lora_alpha");
  if (alpha !== undefined && (typeof alpha !== "number" || !Number.isFinite(alpha)))
    refuse("lora_alpha is not a number");
  const rsLora = get("use_rslora");
  if (rsLora !== undefined && typeof rsLora !== "boolean") refuse("use_rslora is not true or false");
  const pattern = get("alpha_pattern") ?? {};
  if (typeof pattern !== "object" || pattern === null || Array.isArray(pattern))
    refuse("alpha_pattern is not a map");
  const alphaPattern = new Map<string, number>();
  for (const [key, value] of Object.entries(pattern as Record<string, unknown>)) {
    if (!PLAIN_NAME.test(key))
      refuse(`alpha_pattern key ${JSON.stringify(key.slice(0, 60))} is a regular expression`);
    if (typeof value !== "number" || !Number.isFinite(value))
      refuse(`alpha_pattern value for ${JSON.stringify(key.slice(0, 60))} is not a number`);
    alphaPattern.set(key, value as number);
  }
  if (!present) return { rsLora: false, alphaPattern };
  return {
    alpha: (alpha as number | undefined) ?? PEFT_DEFAULT_ALPHA,
    rsLora: rsLora === true,
    alphaPattern,
  };
}

/** The PEFT scaling a file's metadata describes, or undefined when it has none. */
export function peftScaling(file: SafetensorsFile): PeftScaling | undefined {
  const raw = file.metadata[PEFT_METADATA_KEY];
  if (raw === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new AdapterFileError(file.path, `${PEFT_METADATA_KEY} is not JSON`, "__metadata__");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new AdapterFileError(file.path, `${PEFT_METADATA_KEY} is not a JSON object`, "__metadata__");
  }
  const configs = new Map<AdapterComponent, ComponentConfig>();
  const configOf = (component: AdapterComponent) => {
    const found = configs.get(component) ?? config(file, json as Record<string, unknown>, component);
    configs.set(component, found);
    return found;
  };
  return {
    scale(component, module, rank) {
      const c = configOf(component);
      // PEFT matches a pattern key against the module's name or a dotted suffix of it.
      let alpha = c.alpha ?? rank;
      for (const [key, value] of c.alphaPattern) {
        if (module === key || module.endsWith(`.${key}`)) {
          alpha = value;
          break;
        }
      }
      return c.rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
    },
  };
}
