import { AdapterFileError } from "./adapter-errors.js";
import type { AdapterComponent } from "./adapter-target.js";

// The key layouts real LoRA files use, grouped into one entry per adapted module:
// - kohya-ss (sd-scripts, also A1111 and ComfyUI exports): `lora_unet_<module>`, `lora_te_<module>`
//   (SD 1.x text encoder), `lora_te1_`/`lora_te2_` (SDXL's two), each with `.lora_down.weight`,
//   `.lora_up.weight` and optionally `.alpha`; module paths flattened with "_" for ".". LoCon (LyCORIS'
//   LoRA for convolutions) uses the same keys on conv modules.
// - diffusers/PEFT: `unet.<module>.lora_A.weight`/`.lora_B.weight`, `text_encoder.…`, `text_encoder_2.…`.
// - older diffusers: `<module>.lora.down.weight`/`.lora.up.weight`, `<module>.lora_linear_layer.down.weight`,
//   and attention processors' `<attn>.processor.to_q_lora.down.weight` (to_k, to_v, to_out), also without
//   the `unet.` prefix as `save_attn_procs` wrote them; `<prefix>.<module>.alpha` as diffusers converts it.
// Other families change weights differently and are refused by the key that shows them.

export type LoraLayout = "kohya" | "peft" | "diffusers";

export interface LoraModuleKeys {
  readonly component: AdapterComponent;
  readonly layout: LoraLayout;
  /** The module as the file names it: kohya's flattened name (`flat`) or a dotted path. */
  readonly name: string;
  readonly flat: boolean;
  readonly downKey: string;
  readonly upKey: string;
  readonly alphaKey?: string;
}

const KOHYA_PREFIXES: readonly [string, AdapterComponent][] = [
  ["lora_unet_", "unet"],
  ["lora_te1_", "text_encoder"],
  ["lora_te2_", "text_encoder_2"],
  ["lora_te_", "text_encoder"],
];

const DOTTED_PREFIXES: readonly [string, AdapterComponent][] = [
  ["unet.", "unet"],
  ["text_encoder.", "text_encoder"],
  ["text_encoder_2.", "text_encoder_2"],
];

/** UNet modules that `save_attn_procs` wrote without a `unet.` prefix start with these. */
const BARE_UNET = /^(down_blocks|mid_block|up_blocks)\./;

/** Key suffix → the adapter family it belongs to, for the families we refuse. */
const FAMILIES: readonly [RegExp, string][] = [
  [/^hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)$/, "LyCORIS LoHa"],
  [/^lokr_(w1|w1_a|w1_b|w2|w2_a|w2_b|t1|t2)$/, "LyCORIS LoKr"],
  [/^lora_mid\.weight$/, "LyCORIS LoCon with CP decomposition (lora_mid)"],
  [/^(dora_scale|lora_magnitude_vector(\.weight)?)$/, "DoRA"],
  [/^(oft_blocks|oft_diag|oft_r|rescale)$/, "OFT/BOFT"],
  [/^(diff|diff_b)$/, "LyCORIS full (diff)"],
  [/^(w_norm|b_norm)$/, "LyCORIS norm"],
  [/^(on_input|weight)$/, "(IA)³"],
  [/^(a1|a2|b1|b2)\.weight$/, "GLoRA"],
  [/^lora_embedding_[AB](\.weight)?$/, "PEFT embedding LoRA"],
];

const SUPPORTED = "only LoRA and LoCon (lora_down/lora_up, lora_A/lora_B) are applied";

type Part = "down" | "up" | "alpha";

interface Parsed {
  readonly component: AdapterComponent;
  readonly layout: LoraLayout;
  readonly name: string;
  readonly flat: boolean;
  readonly part: Part;
}

function refuseFamily(file: string, key: string, suffix: string): never {
  for (const [pattern, family] of FAMILIES) {
    if (pattern.test(suffix))
      throw new AdapterFileError(file, `${family} is not supported: ${SUPPORTED}`, key);
  }
  throw new AdapterFileError(
    file,
    `unknown key suffix ${JSON.stringify(suffix.slice(0, 40))}: ${SUPPORTED}`,
    key,
  );
}

function parseKohya(file: string, key: string): Parsed | undefined {
  const prefix = KOHYA_PREFIXES.find(([p]) => key.startsWith(p));
  if (prefix === undefined) return undefined;
  const dot = key.indexOf(".");
  const stem = dot < 0 ? key : key.slice(0, dot);
  const suffix = dot < 0 ? "" : key.slice(dot + 1);
  const name = stem.slice(prefix[0].length);
  const part: Part | undefined =
    suffix === "lora_down.weight"
      ? "down"
      : suffix === "lora_up.weight"
        ? "up"
        : suffix === "alpha"
          ? "alpha"
          : undefined;
  if (part === undefined) refuseFamily(file, key, suffix);
  if (name === "") throw new AdapterFileError(file, "names no module", key);
  return { component: prefix[1], layout: "kohya", name, flat: true, part };
}

const ATTENTION_PROCESSOR = /^(.+?)(?:\.processor)?\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const UNET_PROJECTIONS: Readonly<Record<string, string>> = {
  to_q: "to_q",
  to_k: "to_k",
  to_v: "to_v",
  to_out: "to_out.0",
};
const CLIP_PROJECTIONS: Readonly<Record<string, string>> = {
  to_q: "q_proj",
  to_k: "k_proj",
  to_v: "v_proj",
  to_out: "out_proj",
};

function parseDotted(file: string, key: string): Parsed | undefined {
  const prefix = DOTTED_PREFIXES.find(([p]) => key.startsWith(p));
  let component: AdapterComponent;
  let rest: string;
  if (prefix !== undefined) {
    [, component] = prefix;
    rest = key.slice(prefix[0].length);
  } else if (BARE_UNET.test(key)) {
    component = "unet";
    rest = key;
  } else {
    return undefined;
  }
  const dotted = (name: string, layout: LoraLayout, part: Part): Parsed => {
    if (name === "") throw new AdapterFileError(file, "names no module", key);
    return { component, layout, name, flat: false, part };
  };
  let m = /^(.+)\.lora_(A|B)\.weight$/.exec(rest);
  if (m) return dotted(m[1] as string, "peft", m[2] === "A" ? "down" : "up");
  m = /^(.+)\.(?:lora|lora_linear_layer)\.(down|up)\.weight$/.exec(rest);
  if (m) return dotted(m[1] as string, "diffusers", m[2] as Part);
  m = ATTENTION_PROCESSOR.exec(rest);
  if (m) {
    const table = component === "unet" ? UNET_PROJECTIONS : CLIP_PROJECTIONS;
    return dotted(`${m[1]}.${table[m[2] as string]}`, "diffusers", m[3] as Part);
  }
  m = /^(.+)\.alpha$/.exec(rest);
  if (m) return dotted(m[1] as string, "diffusers", "alpha");
  const last = /\.(lora_[A-Za-z_]+(?:\.[a-z]+)?|[a-z0-9_]+)$/.exec(rest);
  // A bare `.weight`/`.bias` under a component prefix is a model's own parameter: a checkpoint, not
  // an adapter (only kohya-ss' `lora_…_<module>.weight` stem marks (IA)³).
  if (last?.[1] === "weight" || last?.[1] === "bias") {
    throw new AdapterFileError(file, "is a full model weight, not a LoRA: the file is a checkpoint", key);
  }
  refuseFamily(file, key, last?.[1] ?? rest);
}

/**
 * Groups a LoRA file's keys by the module they adapt. Throws an AdapterFileError naming the key for a
 * key of no layout we read, of a family we do not apply, or a module with a down but no up (or the
 * reverse), and when the file holds no LoRA weights at all.
 */
export function groupLoraKeys(file: string, keys: Iterable<string>): LoraModuleKeys[] {
  const groups = new Map<string, { parsed: Parsed; keys: Partial<Record<Part, string>> }>();
  for (const key of keys) {
    const parsed = parseKohya(file, key) ?? parseDotted(file, key);
    if (parsed === undefined) {
      throw new AdapterFileError(
        file,
        "is in no LoRA key layout we read (kohya-ss lora_unet_/lora_te_/lora_te1_/lora_te2_, diffusers/PEFT unet./text_encoder./text_encoder_2.)",
        key,
      );
    }
    const id = `${parsed.component}\u0000${parsed.flat ? "_" : "."}\u0000${parsed.name}`;
    const group = groups.get(id) ?? { parsed, keys: {} };
    const seen = group.keys[parsed.part];
    if (seen !== undefined)
      throw new AdapterFileError(file, `names the same ${parsed.part} as ${JSON.stringify(seen)}`, key);
    group.keys[parsed.part] = key;
    groups.set(id, group);
  }
  const out: LoraModuleKeys[] = [];
  for (const { parsed, keys: k } of groups.values()) {
    const any = (k.down ?? k.up ?? k.alpha) as string;
    if (k.down === undefined || k.up === undefined) {
      const has = k.down !== undefined ? "a down" : k.up !== undefined ? "an up" : "an alpha";
      const lacks =
        k.down === undefined && k.up === undefined
          ? "no down or up"
          : k.down === undefined
            ? "no down"
            : "no up";
      throw new AdapterFileError(file, `module has ${has} weight but ${lacks} weight`, any);
    }
    out.push({
      component: parsed.component,
      layout: parsed.layout,
      name: parsed.name,
      flat: parsed.flat,
      downKey: k.down,
      upKey: k.up,
      ...(k.alpha !== undefined && { alphaKey: k.alpha }),
    });
  }
  if (out.length === 0) throw new AdapterFileError(file, "holds no LoRA weights");
  return out;
}
