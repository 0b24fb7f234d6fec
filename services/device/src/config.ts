import { commonSettings, parse } from "@dmesh/runtime";

/** Every setting of the device service; the README's table is `configTable(deviceSettings)`. */
export const deviceSettings = {
  ...commonSettings,
  port: { env: "PORT", description: "gRPC port", default: 50054, parse: parse.int(0, 65535) },
  nvidiaSmi: {
    env: "NVIDIA_SMI",
    description: "nvidia-smi command to query NVIDIA GPUs",
    default: "nvidia-smi",
    parse: parse.string,
  },
  leaseTtlSeconds: {
    env: "LEASE_TTL_SECONDS",
    description: "default lifetime of a memory lease that is not renewed",
    default: 30,
    parse: parse.int(1, 3600),
  },
};
