import { InvalidArgumentError } from "@dmesh/runtime/errors";
import type { ExecutionProviderName } from "../detect/execution-providers.js";
import type { DeviceInfo, DeviceKind, HostSummary } from "../detect/host-devices.js";
import { InsufficientMemoryError } from "../errors/insufficient-memory-error.js";
import { formatBytes } from "../units/bytes.js";
import {
  checkModelMemoryEstimate,
  estimateAt,
  type ModelMemoryEstimate,
  type Precision,
} from "./model-memory-estimate.js";

export interface RecommendationRequest {
  readonly host: Pick<HostSummary, "devices" | "cpu">;
  readonly estimate: ModelMemoryEstimate;
  /** Only consider this device. */
  readonly deviceId?: string;
  /** The weights are already resident, so free memory already excludes them. */
  readonly weightsLoaded?: boolean;
  /** Memory promised elsewhere (leases of other workers), per device id. */
  readonly reservedBytes?: ReadonlyMap<string, number>;
  /** Share of free memory kept back for allocator fragmentation and the runtime itself; default 0.1. */
  readonly headroomFraction?: number;
  /** Upper bound on the batch; default 8. */
  readonly maxBatch?: number;
}

export interface ExecutionRecommendation {
  readonly deviceId: string;
  readonly deviceKind: DeviceKind;
  /** Providers to try in order; always ends with cpu, the fallback. */
  readonly providers: readonly ExecutionProviderName[];
  readonly precision: Precision;
  readonly maxBatch: number;
  readonly intraOpThreads: number;
  readonly interOpThreads: number;
  /** Memory left for the model on the device; undefined where the device does not report memory. */
  readonly availableBytes?: number;
  /** Why this device and these numbers; one line per device considered. */
  readonly reasons: readonly string[];
}

const DEFAULT_HEADROOM = 0.1;
const DEFAULT_MAX_BATCH = 8;
/** A GPU session still runs shape ops and CPU-fallback nodes on the host; a few threads are plenty. */
const GPU_HOST_THREADS = 4;

interface Evaluation {
  readonly device: DeviceInfo;
  readonly precision: Precision;
  /** Undefined where the device does not report memory. */
  readonly availableBytes?: number;
  readonly neededForOne: number;
  readonly batch: number;
}

/**
 * Picks where and how to run a model: among accelerators with a usable provider, the one with the
 * most memory left (after reservations and headroom) that holds the weights and at least one image;
 * else the CPU. fp16 on accelerators, fp32 on the CPU; the largest batch that fits; thread counts.
 */
export function recommendExecution(request: RecommendationRequest): ExecutionRecommendation {
  const estimate = checkModelMemoryEstimate(request.estimate);
  const headroom = request.headroomFraction ?? DEFAULT_HEADROOM;
  if (!(headroom >= 0 && headroom < 1))
    throw new InvalidArgumentError("headroomFraction", `must be in [0, 1), got ${headroom}`);
  const maxBatch = request.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new InvalidArgumentError("maxBatch", `must be a positive integer, got ${maxBatch}`);

  const evaluate = (device: DeviceInfo): Evaluation => {
    const precision: Precision = device.kind === "cpu" ? "float32" : "float16";
    const needs = estimateAt(estimate, precision);
    const weights = request.weightsLoaded ? 0 : needs.weightsBytes;
    const neededForOne = weights + needs.activationBytesPerImage;
    const free = device.memory.freeBytes;
    // DirectML and WebGPU adapters do not report memory: one image at a time.
    if (free === undefined) return { device, precision, neededForOne, batch: 1 };
    const availableBytes = Math.max(0, free - (request.reservedBytes?.get(device.id) ?? 0)) * (1 - headroom);
    const fits = Math.floor((availableBytes - weights) / needs.activationBytesPerImage);
    return { device, precision, availableBytes, neededForOne, batch: Math.max(0, Math.min(fits, maxBatch)) };
  };

  const evaluations = candidates(request).map(evaluate);
  const reasons = evaluations.map(describe);
  const fitting = evaluations.filter((e) => e.batch >= 1);
  const chosen =
    fitting
      .filter((e) => e.device.kind !== "cpu")
      .sort((a, b) => (b.availableBytes ?? -1) - (a.availableBytes ?? -1))[0] ??
    fitting.find((e) => e.device.kind === "cpu");
  if (chosen) return recommendation(chosen, request, reasons);

  const closest = evaluations.reduce((best, e) =>
    (e.availableBytes ?? 0) - e.neededForOne > (best.availableBytes ?? 0) - best.neededForOne ? e : best,
  );
  throw new InsufficientMemoryError(
    closest.device.id,
    Math.ceil(closest.neededForOne),
    Math.floor(closest.availableBytes ?? 0),
    "needed for one image",
  );
}

function describe(e: Evaluation): string {
  if (e.availableBytes === undefined) return `${e.device.id}: memory not reported; batch 1`;
  const verdict = e.batch >= 1 ? `batch ${e.batch}` : "does not fit";
  return `${e.device.id}: ${formatBytes(e.availableBytes)} usable, ${formatBytes(e.neededForOne)} needed for one image at ${e.precision} → ${verdict}`;
}

/** The requested device, or every accelerator with a usable provider plus the CPU. */
function candidates(request: RecommendationRequest): DeviceInfo[] {
  const devices = request.host.devices;
  if (request.deviceId === undefined)
    return devices.filter((d) => d.kind === "cpu" || d.executionProviders.length > 0);
  const device = devices.find((d) => d.id === request.deviceId);
  if (!device) {
    throw new InvalidArgumentError(
      "deviceId",
      `unknown device ${request.deviceId} (have ${devices.map((d) => d.id).join(", ")})`,
    );
  }
  return [device];
}

function recommendation(
  chosen: Evaluation,
  request: RecommendationRequest,
  reasons: string[],
): ExecutionRecommendation {
  const { device } = chosen;
  const cores = request.host.cpu.effectiveCores;
  return {
    deviceId: device.id,
    deviceKind: device.kind,
    providers: [...device.executionProviders.filter((p) => p !== "cpu"), "cpu"],
    precision: chosen.precision,
    maxBatch: chosen.batch,
    intraOpThreads: device.kind === "cpu" ? cores : Math.min(GPU_HOST_THREADS, cores),
    interOpThreads: 1,
    availableBytes: chosen.availableBytes,
    reasons,
  };
}
