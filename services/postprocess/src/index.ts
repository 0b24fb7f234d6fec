export { postprocessSettings } from "./config.js";
export { type PostprocessConfig, startPostprocess } from "./server.js";
