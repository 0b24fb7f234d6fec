import type { MessageInitShape } from "@bufbuild/protobuf";
import { type ControlNetUnitSchema, ControlResizeMode } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import type { InfotextControlNetUnit } from "../infotext/control-net-units.js";

const RESIZE_MODES: Record<NonNullable<InfotextControlNetUnit["resizeMode"]>, ControlResizeMode> = {
  "just-resize": ControlResizeMode.JUST_RESIZE,
  "crop-and-resize": ControlResizeMode.CROP_AND_RESIZE,
  "resize-and-fill": ControlResizeMode.RESIZE_AND_FILL,
};

/** An infotext's ControlNet unit as the contract's unit (no image); what the text left out stays unset. */
export function controlNetUnitMessage(
  u: InfotextControlNetUnit,
): MessageInitShape<typeof ControlNetUnitSchema> {
  return {
    model: u.model,
    preprocessor: {
      name: u.module,
      resolution: u.processorRes ?? 0,
      thresholdA: u.thresholdA ?? 0,
      thresholdB: u.thresholdB ?? 0,
      pixelPerfect: u.pixelPerfect ?? false,
    },
    resizeMode: u.resizeMode ? RESIZE_MODES[u.resizeMode] : ControlResizeMode.UNSPECIFIED,
    ...(u.weight !== undefined ? { conditioningScale: u.weight } : {}),
    ...(u.guidanceStart !== undefined ? { guidanceStart: u.guidanceStart } : {}),
    ...(u.guidanceEnd !== undefined ? { guidanceEnd: u.guidanceEnd } : {}),
  };
}
