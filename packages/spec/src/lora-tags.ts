import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { LIMITS } from "./limits.js";

// A1111's extra-network tags in prompts (modules/extra_networks.py, parse_prompt): every `<kind:args>`
// (kind: word characters, args: anything but ">") is cut from the text, leaving nothing in its place, and
// its args split on ":". For LoRA (extensions-builtin/Lora/extra_networks_lora.py) an arg with one "="
// is named, the rest positional: `<lora:NAME>`, `<lora:NAME:W>` (both weights W), `<lora:NAME:TE:UNET>`,
// `te=` and `unet=` overriding them; `lyco` is an alias of `lora`. A1111 parses only positive prompts:
// tags in a negative prompt stay text there. Where A1111 skips silently (an unknown kind, `dyn`, a
// number it cannot read), a request is refused, naming the field: a LoRA must never be dropped unseen.

export interface LoraTag {
  /** The LoRA's name: its file stem. */
  readonly name: string;
  readonly textEncoderWeight: number;
  readonly unetWeight: number;
}

export interface PromptWithoutTags {
  /** The prompt with every tag cut out, as the tokenizer should see it. */
  readonly text: string;
  /** The tags in the order they appear. */
  readonly tags: readonly LoraTag[];
}

const TAG = /<([\p{L}\p{N}_]+):([^>]+)>/gu;
const LORA_KINDS = new Set(["lora", "lyco"]);
const NUMBER = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
const SHOWN = 40;

function shown(text: string): string {
  return JSON.stringify(text.length > SHOWN ? `${text.slice(0, SHOWN)}…` : text);
}

function weight(field: string, tag: string, what: string, text: string): number {
  const value = NUMBER.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(value))
    throw new InvalidArgumentError(field, `${tag}: ${what} ${shown(text)} is not a number`);
  if (Math.abs(value) > LIMITS.maxAdapterWeight) {
    throw new InvalidArgumentError(
      field,
      `${tag}: ${what} ${value} is outside [-${LIMITS.maxAdapterWeight}, ${LIMITS.maxAdapterWeight}]`,
    );
  }
  return value;
}

/**
 * Checks a LoRA name as a request may give it: a file stem, so no path separators, no "." or "..", no
 * control characters, at most LIMITS.maxAdapterNameChars characters.
 */
export function checkAdapterName(field: string, name: string, context?: string): string {
  const at = context === undefined ? "" : `${context}: `;
  if (name.length === 0) throw new InvalidArgumentError(field, `${at}names no LoRA`);
  if (name.length > LIMITS.maxAdapterNameChars) {
    throw new InvalidArgumentError(
      field,
      `${at}name ${shown(name)} is longer than ${LIMITS.maxAdapterNameChars} characters`,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[/\\\u0000-\u001f\u007f]/.test(name) || name === "." || name === "..") {
    throw new InvalidArgumentError(field, `${at}name ${shown(name)} is not a file stem`);
  }
  return name;
}

function parseTag(field: string, whole: string, args: string): LoraTag {
  const tag = shown(whole);
  const positional: string[] = [];
  const named = new Map<string, string>();
  for (const item of args.split(":")) {
    const parts = item.split("=");
    if (parts.length === 2) named.set(parts[0] as string, parts[1] as string);
    else positional.push(item);
  }
  for (const key of named.keys()) {
    if (key !== "te" && key !== "unet") {
      const why = key === "dyn" ? "dynamic rank (dyn) is not supported" : `unknown argument ${shown(key)}`;
      throw new InvalidArgumentError(field, `${tag}: ${why}`);
    }
  }
  if (positional.length > 3) throw new InvalidArgumentError(field, `${tag}: takes at most NAME:TE:UNET`);
  const name = checkAdapterName(field, positional[0] ?? "", tag);
  const te = weight(field, tag, "weight", named.get("te") ?? positional[1] ?? "1");
  const unetText = named.get("unet") ?? positional[2];
  const unet = unetText === undefined ? te : weight(field, tag, "unet weight", unetText);
  return { name, textEncoderWeight: te, unetWeight: unet };
}

/**
 * Cuts A1111's `<lora:…>` tags out of a prompt. `field` names the request field in errors
 * (INVALID_ARGUMENT): a tag of another kind, a bad name or number, more than LIMITS.maxAdapters tags.
 */
export function extractLoraTags(text: string, field = "spec.conditioning.prompt"): PromptWithoutTags {
  const tags: LoraTag[] = [];
  const rest = text.replace(TAG, (whole: string, kind: string, args: string) => {
    if (!LORA_KINDS.has(kind))
      throw new InvalidArgumentError(field, `${shown(whole)}: only <lora:…> tags are supported`);
    if (tags.length === LIMITS.maxAdapters) {
      throw new InvalidArgumentError(field, `holds more than ${LIMITS.maxAdapters} LoRA tags`);
    }
    tags.push(parseTag(field, whole, args));
    return "";
  });
  return { text: rest, tags };
}

/**
 * One entry per LoRA, as A1111 applies repeated tags: it keeps one object per name, so the last tag's
 * weights win, and applies it once per tag, so n tags of a name act as n × the last tag's weights.
 * Entries keep the order of each name's first tag.
 */
export function combineLoraTags(tags: readonly LoraTag[]): LoraTag[] {
  const byName = new Map<string, { last: LoraTag; count: number }>();
  for (const tag of tags) {
    const seen = byName.get(tag.name);
    byName.set(tag.name, { last: tag, count: (seen?.count ?? 0) + 1 });
  }
  return [...byName.values()].map(({ last, count }) => ({
    name: last.name,
    textEncoderWeight: count * last.textEncoderWeight,
    unetWeight: count * last.unetWeight,
  }));
}
