import { PostprocessService } from "@dmesh/contracts/dmesh/postprocess/v1/postprocess_pb.js";
import type { ServiceRegistration } from "@dmesh/runtime";
import type { PostprocessHandler } from "./postprocess-handler.js";

export function routes(handler: PostprocessHandler): ServiceRegistration[] {
  return [{ service: PostprocessService, impl: handler }];
}
