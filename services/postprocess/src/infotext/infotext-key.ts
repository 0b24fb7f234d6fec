/**
 * A key A1111's parser can read back: its `re_param` takes `\w[\w \-/]+` before the colon.
 * Python's `\w` is Unicode-aware, hence the property classes.
 */
export const INFOTEXT_KEY_SOURCE = String.raw`[\p{L}\p{N}_][\p{L}\p{N}_ \-/]+`;

const KEY = new RegExp(`^${INFOTEXT_KEY_SOURCE}$`, "u");

export function isInfotextKey(key: string): boolean {
  return KEY.test(key);
}
