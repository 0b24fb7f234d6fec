export { postprocessSettings } from "./config.js";
export { embedPngInfotext } from "./encode/encode-image.js";
export { type PostprocessConfig, startPostprocess } from "./server.js";
