import { basename } from "node:path";

/**
 * A file that is not a usable safetensors file. The message names the file (by its base name, so a
 * server's directory layout does not reach its clients) and, where one is at fault, the tensor key.
 */
export class SafetensorsError extends Error {
  constructor(
    /** The path as given to the reader or writer. */
    readonly file: string,
    /** What is wrong, without the file name. */
    readonly problem: string,
    /** The tensor (or `__metadata__`) the problem is about. */
    readonly key?: string,
    options?: { cause?: unknown },
  ) {
    super(`${basename(file)}: ${key === undefined ? "" : `${quoteKey(key)}: `}${problem}`, options);
    this.name = "SafetensorsError";
  }
}

/** At most this many characters of a key go into a message: keys come from the file, not from us. */
const MAX_QUOTED_KEY = 120;

export function quoteKey(key: string): string {
  const short = key.length > MAX_QUOTED_KEY ? `${key.slice(0, MAX_QUOTED_KEY)}…` : key;
  return JSON.stringify(short);
}
