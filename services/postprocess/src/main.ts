#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig, startTracing } from "@dmesh/runtime";
import { postprocessSettings } from "./config.js";
import { startPostprocess } from "./server.js";

const config = loadConfig(postprocessSettings);
await startTracing({ service: "postprocess", otlpEndpoint: config.otlpEndpoint });
const logger = createLogger("postprocess", config.logLevel);
closeOnSignals(await startPostprocess(config, logger), logger);
