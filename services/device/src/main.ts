#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig, startTracing } from "@dmesh/runtime";
import { deviceSettings } from "./config.js";
import { startDevice } from "./server.js";

const config = loadConfig(deviceSettings);
await startTracing({ service: "device", otlpEndpoint: config.otlpEndpoint });
const logger = createLogger("device", config.logLevel);
closeOnSignals(await startDevice(config, logger), logger);
