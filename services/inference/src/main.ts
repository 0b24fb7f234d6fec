#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig, startTracing } from "@dmesh/runtime";
import { inferenceSettings } from "./config.js";
import { startInference } from "./server.js";

const config = loadConfig(inferenceSettings);
await startTracing({ service: "inference", otlpEndpoint: config.otlpEndpoint });
const logger = createLogger("inference", config.logLevel);
closeOnSignals(await startInference(config, logger), logger);
