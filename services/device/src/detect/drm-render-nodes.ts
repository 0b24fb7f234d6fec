import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** A Linux GPU with a kernel driver, seen through its DRM render node (what Vulkan and so WebGPU use). */
export interface RenderNode {
  readonly node: string;
  readonly vendor: string;
  readonly pciVendorId: string;
  readonly pciDeviceId: string;
}

const VENDORS: Readonly<Record<string, string>> = {
  "0x10de": "NVIDIA",
  "0x1002": "AMD",
  "0x8086": "Intel",
  "0x1af4": "virtio",
};

/** Render nodes under /sys/class/drm; none (not an error) where the folder is absent. */
export async function listRenderNodes(root = "/sys/class/drm"): Promise<RenderNode[]> {
  const entries = await readdir(root).catch(() => [] as string[]);
  const nodes: RenderNode[] = [];
  for (const node of entries.filter((name) => /^renderD\d+$/.test(name)).sort()) {
    const read = (file: string) =>
      readFile(join(root, node, "device", file), "utf8").then(
        (t) => t.trim(),
        () => "",
      );
    const pciVendorId = await read("vendor");
    nodes.push({
      node,
      vendor: VENDORS[pciVendorId] ?? "unknown",
      pciVendorId,
      pciDeviceId: await read("device"),
    });
  }
  return nodes;
}
