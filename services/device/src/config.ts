import { commonSettings, parse } from "@dmesh/runtime";
import { RESOURCE_SCOPES } from "./detect/resource-scope.js";
import { MAX_LEASE_TTL_SECONDS } from "./leases/memory-lease-manager.js";

/** Every setting of the device service; the README's table is `configTable(deviceSettings)`. */
export const deviceSettings = {
  ...commonSettings,
  port: { env: "PORT", description: "gRPC port", default: 50054, parse: parse.int(0, 65535) },
  resourceScope: {
    env: "RESOURCE_SCOPE",
    description:
      "whose CPU and RAM are reported, planned for and leased: `container` (capped by this process's cgroup limits) or `node` (the whole node, from /proc/meminfo; the DaemonSet)",
    default: "container",
    parse: parse.oneOf(...RESOURCE_SCOPES),
  },
  procRoot: {
    env: "PROC_ROOT",
    description: "where procfs is mounted (meminfo, self/mountinfo)",
    default: "/proc",
    parse: parse.string,
  },
  cgroupRoot: {
    env: "CGROUP_ROOT",
    description: "where this process's cgroup (v2, or v1 controllers) is mounted",
    default: "/sys/fs/cgroup",
    parse: parse.string,
  },
  nvidiaSmi: {
    env: "NVIDIA_SMI",
    description: "nvidia-smi command to query NVIDIA GPUs",
    default: "nvidia-smi",
    parse: parse.string,
  },
  leaseTtlSeconds: {
    env: "LEASE_TTL_SECONDS",
    description: `lifetime of a memory lease that asks for none (AcquireLease ttl_seconds 0) and is not renewed; at most ${MAX_LEASE_TTL_SECONDS}`,
    default: 30,
    parse: parse.int(1, MAX_LEASE_TTL_SECONDS),
  },
};
