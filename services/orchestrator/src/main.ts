#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig } from "@dmesh/runtime";
import { orchestratorSettings } from "./config.js";
import { startOrchestrator } from "./server.js";

const config = loadConfig(orchestratorSettings);
const logger = createLogger("orchestrator", config.logLevel);
const orchestrator = await startOrchestrator(config, logger);
closeOnSignals(orchestrator, logger);
