export { deviceSettings } from "./config.js";
export { type DeviceConfig, startDevice } from "./server.js";
