#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig } from "@dmesh/runtime";
import { inferenceSettings } from "./config.js";
import { startInference } from "./server.js";

const config = loadConfig(inferenceSettings);
const logger = createLogger("inference", config.logLevel);
closeOnSignals(await startInference(config, logger), logger);
