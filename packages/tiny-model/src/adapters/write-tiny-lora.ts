import { type TensorToWrite, type WritableDtype, writeSafetensors } from "@dmesh/safetensors";
import type { TinyModelKind } from "../options.js";
import { createWeightInit } from "../weight-init.js";
import {
  type ModuleGroup,
  type TinyModule,
  tinyAdapterDims,
  tinyAdapterModules,
} from "./tiny-adapter-modules.js";

// Seeded LoRA files for the tiny model, one per key layout that real files use (see the inference
// service's adapters domain for what each layout is), so every layout is read, checked and applied in
// tests and demos exactly as a downloaded file would be.

export const TINY_LORA_LAYOUTS = ["kohya-sd1", "kohya-sdxl", "locon", "peft", "diffusers-old"] as const;
export type TinyLoraLayout = (typeof TINY_LORA_LAYOUTS)[number];

export interface TinyLoraOptions {
  readonly layout: TinyLoraLayout;
  /** The tiny model it is for; kohya-sd1 needs sd15, kohya-sdxl sdxl or sdxl-refiner. Default: by layout. */
  readonly kind?: TinyModelKind;
  readonly seed?: number;
  readonly rank?: number;
  /** Stored as each module's `.alpha` where the layout has one (scale alpha/rank); default rank/2. */
  readonly alpha?: number;
  /** The UNet's layers_per_block the file is made for (the tiny model's default is 1). */
  readonly layersPerBlock?: number;
  /** Default F16, as kohya-ss saves; PEFT files F32. */
  readonly dtype?: WritableDtype;
  /** Standard deviation of the up weights relative to 1/√rank (default 0.5): how strongly it acts. */
  readonly strength?: number;
}

export class TinyLoraOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TinyLoraOptionError";
  }
}

const flat = (path: string) => path.replaceAll(".", "_");

/** The groups of layers each layout adapts: plain LoRA its usual targets; LoCon every conv too. */
const TARGETS: Readonly<Record<TinyLoraLayout, readonly ModuleGroup[]>> = {
  "kohya-sd1": ["transformer", "text"],
  "kohya-sdxl": ["transformer", "text"],
  locon: ["transformer", "text", "resnet", "sampler"],
  peft: ["transformer", "text"],
  "diffusers-old": ["transformer", "text"],
};

interface Names {
  readonly down: string;
  readonly up: string;
  readonly alpha?: string;
}

const ATTENTION_PROCESSOR = /^(.*\.attn[12])\.(to_q|to_k|to_v|to_out\.0)$/;
const TEXT_ATTENTION = /^(.*\.self_attn)\.(q_proj|k_proj|v_proj|out_proj)$/;

/** The key names a layout gives one module, or undefined where it cannot name it. */
function keyNames(layout: TinyLoraLayout, kind: TinyModelKind, m: TinyModule): Names | undefined {
  const kohya = (stem: string): Names => ({
    down: `${stem}.lora_down.weight`,
    up: `${stem}.lora_up.weight`,
    alpha: `${stem}.alpha`,
  });
  const sdxl = kind !== "sd15";
  switch (layout) {
    case "kohya-sd1":
    case "kohya-sdxl":
    case "locon": {
      if (m.component === "unet") return kohya(`lora_unet_${flat(sdxl ? (m.sgmPath as string) : m.path)}`);
      const prefix = !sdxl ? "lora_te" : m.component === "text_encoder" ? "lora_te1" : "lora_te2";
      return kohya(`${prefix}_${flat(m.path)}`);
    }
    case "peft":
      return { down: `${m.component}.${m.path}.lora_A.weight`, up: `${m.component}.${m.path}.lora_B.weight` };
    case "diffusers-old": {
      // Attention processors as save_attn_procs wrote them (no prefix); text attention through the
      // monkey-patched lora_linear_layer; other Linear layers as LoRACompatibleLinear's `.lora.`, with
      // a converted `.alpha`.
      const attention = ATTENTION_PROCESSOR.exec(m.path);
      if (m.component === "unet" && attention) {
        const proj = (attention[2] as string).replace(".0", "");
        return {
          down: `${attention[1]}.processor.${proj}_lora.down.weight`,
          up: `${attention[1]}.processor.${proj}_lora.up.weight`,
        };
      }
      if (m.component !== "unet" && TEXT_ATTENTION.test(m.path)) {
        const base = `${m.component}.${m.path}.lora_linear_layer`;
        return { down: `${base}.down.weight`, up: `${base}.up.weight` };
      }
      const base = `${m.component}.${m.path}`;
      return { down: `${base}.lora.down.weight`, up: `${base}.lora.up.weight`, alpha: `${base}.alpha` };
    }
  }
}

function defaultKind(layout: TinyLoraLayout): TinyModelKind {
  return layout === "kohya-sd1" ? "sd15" : "sdxl";
}

/** One adapted module of a tiny LoRA and the tensors that adapt it. */
export interface TinyLoraEntry {
  readonly module: TinyModule;
  readonly down: TensorToWrite;
  readonly up: TensorToWrite;
  readonly alpha?: TensorToWrite;
}

/** The modules a tiny LoRA adapts and its tensors for each, in a fixed order (same options, same bytes). */
export function tinyLoraEntries(options: TinyLoraOptions): TinyLoraEntry[] {
  const { layout } = options;
  if (!TINY_LORA_LAYOUTS.includes(layout))
    throw new TinyLoraOptionError(`layout must be one of ${TINY_LORA_LAYOUTS.join(", ")}`);
  const kind = options.kind ?? defaultKind(layout);
  if (layout === "kohya-sd1" && kind !== "sd15")
    throw new TinyLoraOptionError("layout kohya-sd1 is for kind sd15");
  if (layout === "kohya-sdxl" && kind === "sd15")
    throw new TinyLoraOptionError("layout kohya-sdxl is for an SDXL kind");
  const rank = options.rank ?? 4;
  if (!Number.isInteger(rank) || rank < 1 || rank > 64)
    throw new TinyLoraOptionError("rank must be an integer in [1, 64]");
  const alpha = options.alpha ?? rank / 2;
  const dtype = options.dtype ?? (layout === "peft" ? "F32" : "F16");
  const strength = options.strength ?? 0.5;
  const init = createWeightInit(options.seed ?? 7);
  const targets = TARGETS[layout];
  const entries: TinyLoraEntry[] = [];
  for (const module of tinyAdapterModules(tinyAdapterDims(kind, options.layersPerBlock))) {
    if (!targets.includes(module.group)) continue;
    const names = keyNames(layout, kind, module);
    if (names === undefined) continue;
    const [out, inputs, kh = 1, kw = 1] = module.shape as [number, number, number?, number?];
    const conv = module.shape.length === 4;
    const fanIn = inputs * kh * kw;
    entries.push({
      module,
      down: {
        name: names.down,
        dtype,
        shape: conv ? [rank, inputs, kh, kw] : [rank, inputs],
        data: init.uniform(names.down, rank * fanIn, 1 / Math.sqrt(fanIn)),
      },
      up: {
        name: names.up,
        dtype,
        shape: conv ? [out, rank, 1, 1] : [out, rank],
        data: init.uniform(names.up, out * rank, strength / Math.sqrt(rank)),
      },
      ...(names.alpha !== undefined && {
        alpha: { name: names.alpha, dtype, shape: [], data: new Float32Array([alpha]) },
      }),
    });
  }
  return entries;
}

/** The tensors of a tiny LoRA, as its file holds them. */
export function tinyLoraTensors(options: TinyLoraOptions): TensorToWrite[] {
  return tinyLoraEntries(options).flatMap((e) =>
    e.alpha === undefined ? [e.down, e.up] : [e.down, e.up, e.alpha],
  );
}

/** Writes a tiny LoRA to `path` (whole or not at all); returns its size in bytes. */
export async function writeTinyLora(path: string, options: TinyLoraOptions): Promise<number> {
  const kind = options.kind ?? defaultKind(options.layout);
  return writeSafetensors(path, tinyLoraTensors(options), {
    "dmesh.tiny_lora.layout": options.layout,
    "dmesh.tiny_lora.kind": kind,
  });
}
