import { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";
import type { ServiceRegistration } from "@dmesh/runtime";
import type { DeviceHandler } from "./device-handler.js";

export function routes(handler: DeviceHandler): ServiceRegistration[] {
  return [{ service: DeviceService, impl: handler }];
}
