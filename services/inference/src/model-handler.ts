import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AdapterKind,
  type ListAdaptersRequest,
  ModelFamily,
  ModelSchema,
  type ModelService,
} from "@dmesh/contracts/dmesh/model/v1/model_pb.js";
import { InvalidArgumentError } from "@dmesh/runtime";
import type { AdapterCatalog, ListedAdapter, ListedKind } from "./adapters/index.js";
import type { ModelInfo, ModelRegistry } from "./models/model-registry.js";

const FAMILIES = {
  sdxl: ModelFamily.SDXL,
  "sdxl-refiner": ModelFamily.SDXL_REFINER,
  sd1: ModelFamily.SD1,
  sd2: ModelFamily.SD2,
};

const KINDS: Record<ListedKind, AdapterKind> = {
  lora: AdapterKind.LORA,
  embedding: AdapterKind.EMBEDDING,
  controlnet: AdapterKind.CONTROLNET,
};
const KIND_NAMES = new Map(Object.entries(KINDS).map(([name, kind]) => [kind, name as ListedKind]));

/** ModelService transport over the model registry. */
export class ModelHandler implements ServiceImpl<typeof ModelService> {
  constructor(
    private readonly models: ModelRegistry,
    private readonly adapters: AdapterCatalog,
  ) {}

  listModels() {
    this.models.scan();
    return { models: this.models.list().map(toProto) };
  }

  getModel(req: { id: string }) {
    return { model: toProto(this.models.info(req.id)) };
  }

  async listAdapters(req: ListAdaptersRequest, ctx: HandlerContext) {
    const kind = KIND_NAMES.get(req.kind);
    if (req.kind !== AdapterKind.UNSPECIFIED && kind === undefined)
      throw new InvalidArgumentError("kind", `unknown adapter kind ${req.kind}`);
    return { adapters: (await this.adapters.list(kind, ctx.signal)).map(adapterToProto) };
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

function adapterToProto(adapter: ListedAdapter) {
  return {
    name: adapter.name,
    kind: KINDS[adapter.kind],
    family: adapter.family === "unknown" ? ModelFamily.UNSPECIFIED : FAMILIES[adapter.family],
    shortHash: adapter.shortHash,
    fileBytes: BigInt(adapter.bytes),
    sha256: adapter.sha256,
  };
}
