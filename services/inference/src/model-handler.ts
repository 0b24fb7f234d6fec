import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ModelFamily, ModelSchema, type ModelService } from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import type { ModelInfo, ModelRegistry } from "./models/model-registry.js";

const FAMILIES = {
  sdxl: ModelFamily.SDXL,
  "sdxl-refiner": ModelFamily.SDXL_REFINER,
  sd1: ModelFamily.SD1,
  sd2: ModelFamily.SD2,
};

/** ModelService transport over the model registry. */
export class ModelHandler implements ServiceImpl<typeof ModelService> {
  constructor(private readonly models: ModelRegistry) {}

  listModels() {
    this.models.scan();
    return { models: this.models.list().map(toProto) };
  }

  getModel(req: { id: string }) {
    return { model: toProto(this.models.info(req.id)) };
  }

  listAdapters(): never {
    throw new ConnectError("ListAdapters is not served by this inference build yet", Code.Unimplemented);
  }

  async loadModel(req: { id: string }) {
    return { model: toProto(await this.models.load(req.id)) };
  }

  async unloadModel(req: { id: string }) {
    return { model: toProto(await this.models.unload(req.id)) };
  }
}

function toProto(info: ModelInfo) {
  const dir = info.dir;
  return create(ModelSchema, {
    id: info.id,
    family: dir ? FAMILIES[dir.family] : ModelFamily.UNSPECIFIED,
    path: dir?.path ?? "",
    loaded: info.loaded,
    memoryBytes: BigInt(info.memoryBytes),
    executionProviders: info.providers,
    lastUsed: info.lastUsed ? timestampFromMs(info.lastUsed) : undefined,
    defaultScheduler: String(dir?.schedulerConfig._class_name ?? ""),
    nativeSize: dir?.nativeSize ?? 0,
    inpainting: dir?.inpainting ?? false,
    components: Object.entries(dir?.fileBytes ?? {}).map(([name, bytes]) => ({
      name,
      fileBytes: BigInt(bytes ?? 0),
    })),
  });
}
