/** Prompt text edits that the adapter pickers make, as AUTOMATIC1111's extra-networks cards make them. */

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `<lora:NAME:WEIGHT>` set in the prompt: an existing tag for NAME gets the weight, else the tag is appended. */
export function withLoraTag(prompt: string, name: string, weight: number): string {
  const tag = `<lora:${name}:${Number(weight.toFixed(3))}>`;
  const existing = new RegExp(`<lora:${escapeRegExp(name)}(:[^>]*)?>`);
  if (existing.test(prompt)) return prompt.replace(existing, tag);
  return appendWord(prompt, tag);
}

/** `word` appended to the prompt after one space, as A1111's extra-network cards add text (its default separator). */
export function appendWord(prompt: string, word: string): string {
  const text = prompt.trimEnd();
  return text === "" ? word : `${text} ${word}`;
}
