import { commonSettings, parse } from "@dmesh/runtime";

/** Every setting of the postprocess service; the README's table is `configTable(postprocessSettings)`. */
export const postprocessSettings = {
  ...commonSettings,
  port: { env: "PORT", description: "gRPC port", default: 50053, parse: parse.int(0, 65535) },
  maxInputPixels: {
    env: "MAX_INPUT_PIXELS",
    description: "largest input image (width x height) decoded; larger ones are refused before decoding",
    default: 64 * 1024 * 1024,
    parse: parse.int(1, 1 << 30),
  },
};
