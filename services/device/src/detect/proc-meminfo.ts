import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** The node's RAM as the kernel counts it, cgroups aside. */
export interface NodeMemory {
  readonly totalBytes: number;
  /** What can be allocated without swapping: free memory plus reclaimable page cache and slab. */
  readonly availableBytes: number;
}

/**
 * Reads `<procRoot>/meminfo`; undefined where there is none (macOS, Windows). /proc/meminfo is not
 * namespaced by cgroups, so inside a container it still describes the whole node, unless lxcfs is
 * mounted over it (see lxcfs-mounts.ts).
 */
export async function readMeminfo(procRoot = "/proc"): Promise<NodeMemory | undefined> {
  const file = join(procRoot, "meminfo");
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  return text === undefined ? undefined : parseMeminfo(text, file);
}

/** `MemTotal`, and `MemAvailable` (kernels before 3.14 lack it: `MemFree`, which undercounts, instead). */
export function parseMeminfo(text: string, file = "meminfo"): NodeMemory {
  const fields = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([\w()]+):\s+(\d+)( kB)?$/.exec(line.trim());
    if (match?.[1] && match[2]) fields.set(match[1], Number(match[2]) * (match[3] ? 1024 : 1));
  }
  const totalBytes = fields.get("MemTotal");
  const availableBytes = fields.get("MemAvailable") ?? fields.get("MemFree");
  if (totalBytes === undefined || availableBytes === undefined)
    throw new Error(`${file}: no MemTotal and MemAvailable/MemFree lines; is it a Linux /proc/meminfo?`);
  return { totalBytes, availableBytes };
}
