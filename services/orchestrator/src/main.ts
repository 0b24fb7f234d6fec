#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig, startTracing } from "@dmesh/runtime";
import { orchestratorSettings } from "./config.js";
import { startOrchestrator } from "./server.js";

const config = loadConfig(orchestratorSettings);
await startTracing({ service: "orchestrator", otlpEndpoint: config.otlpEndpoint });
const logger = createLogger("orchestrator", config.logLevel);
const orchestrator = await startOrchestrator(config, logger);
closeOnSignals(orchestrator, logger);
