import { createClient } from "@connectrpc/connect";
import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import { type ClientTls, createGrpcTransport } from "@dmesh/runtime";
import type { Logger } from "@dmesh/runtime/logger";
import { estimateActivationBytes } from "@dmesh/spec";

/**
 * The onnxruntime provider chain this process uses: the configured one, else what the device service on
 * this host recommends for the default model from what it detected (GPUs, installed provider libraries),
 * else CPU; with the device it recommended (`cuda:1`), whose index becomes the providers' device id.
 */
export async function resolveProviderChain(
  config: { executionProviders: string[]; deviceUrl: string; deviceTls?: ClientTls | undefined },
  model: { bytes: number; width: number; height: number },
  logger: Logger,
): Promise<{ chain: string[]; device?: string }> {
  if (config.executionProviders.length > 0) {
    logger.info({ chain: config.executionProviders, from: "EXECUTION_PROVIDERS" }, "provider chain");
    return { chain: config.executionProviders };
  }
  if (!config.deviceUrl) return { chain: ["cpu"] };
  const transport = createGrpcTransport({
    address: config.deviceUrl,
    ...(config.deviceTls ? { tls: config.deviceTls } : {}),
  });
  try {
    const rec = await createClient(DeviceService, transport).recommendSettings(
      {
        modelBytes: BigInt(Math.max(1, model.bytes)),
        activationBytesPerImage: BigInt(estimateActivationBytes(model.width, model.height)),
        width: model.width,
        height: model.height,
      },
      { timeoutMs: 5000 },
    );
    const chain = rec.executionProviders.length > 0 ? rec.executionProviders : ["cpu"];
    logger.info(
      { chain, from: config.deviceUrl, device: rec.deviceId, reason: rec.reason },
      "provider chain",
    );
    return { chain, device: rec.deviceId };
  } catch (err) {
    logger.warn(
      { from: config.deviceUrl, err: String(err) },
      "device service unavailable; provider chain is cpu",
    );
    return { chain: ["cpu"] };
  } finally {
    transport.close();
  }
}
