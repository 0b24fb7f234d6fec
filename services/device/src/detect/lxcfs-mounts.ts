import { readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Whether lxcfs is mounted over meminfo in `<procRoot>/self/mountinfo`: then /proc/meminfo shows the
 * container's limit as the machine's RAM and cannot give node-wide figures. Unknown (no mountinfo) = no.
 */
export async function meminfoFromLxcfs(procRoot = "/proc"): Promise<boolean> {
  const text = await readFile(join(procRoot, "self", "mountinfo"), "utf8").catch(() => "");
  return mountsLxcfsOverMeminfo(text);
}

/** mountinfo lines: `id parent dev root mount-point options [optional…] - fstype source super-options`. */
export function mountsLxcfsOverMeminfo(mountinfo: string): boolean {
  return mountinfo.split("\n").some((line) => {
    const [mount, fs] = line.split(" - ");
    return fs?.startsWith("fuse.lxcfs ") === true && mount?.split(" ")[4]?.endsWith("/meminfo") === true;
  });
}
