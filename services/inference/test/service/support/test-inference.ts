import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { createGrpcTransport, type Logger, loadConfig } from "@dmesh/runtime";
import { type TinyModelOptions, writeTinyModel } from "@dmesh/tiny-model";
import { inferenceSettings } from "../../../src/config.js";
import { startInference } from "../../../src/server.js";

/** One log line as the service wrote it: level, message, and the fields (bindings included). */
export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A Logger (the interface the service takes) that keeps every line, so tests can read what the service said. */
export function createRecordingLogger(
  lines: LogLine[] = [],
  bindings: Record<string, unknown> = {},
): Logger & { lines: LogLine[] } {
  const write = (level: string) => (obj: object, msg?: string) => {
    lines.push({ ...bindings, ...obj, level, msg: msg ?? "" });
  };
  return {
    lines,
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (more) => createRecordingLogger(lines, { ...bindings, ...more }),
  };
}

export interface TestInference {
  readonly address: string;
  readonly modelsDir: string;
  readonly logs: LogLine[];
  readonly inference: ReturnType<typeof createClient<typeof InferenceService>>;
  readonly models: ReturnType<typeof createClient<typeof ModelService>>;
  readonly conditioning: ReturnType<typeof createClient<typeof ConditioningService>>;
  close(): Promise<void>;
}

/**
 * The inference service on a loopback port over a fresh MODELS_DIR of tiny models (written by
 * @dmesh/tiny-model: real ONNX graphs), with typed gRPC clients. `models` maps a model id to its options.
 */
export async function startTestInference(
  models: Record<string, Partial<TinyModelOptions>>,
  env: Record<string, string> = {},
  prepare?: (modelsDir: string) => Promise<void>,
): Promise<TestInference> {
  const modelsDir = await mkdtemp(join(tmpdir(), "dmesh-inference-test-"));
  for (const [id, options] of Object.entries(models)) await writeTinyModel(join(modelsDir, id), options);
  await prepare?.(modelsDir);
  const config = loadConfig(
    inferenceSettings,
    { PORT: "0", MODELS_DIR: modelsDir, PRELOAD_DEFAULT_MODEL: "false", INTRA_OP_THREADS: "1", ...env },
    [],
  );
  const logger = createRecordingLogger();
  const service = await startInference(config, logger);
  const transport = createGrpcTransport({ address: service.address });
  return {
    address: service.address,
    modelsDir,
    logs: logger.lines,
    inference: createClient(InferenceService, transport),
    models: createClient(ModelService, transport),
    conditioning: createClient(ConditioningService, transport),
    close: async () => {
      transport.close();
      await service.close();
      await rm(modelsDir, { recursive: true, force: true });
    },
  };
}
