#!/usr/bin/env node
import { closeOnSignals, createLogger, loadConfig } from "@dmesh/runtime";
import { postprocessSettings } from "./config.js";
import { startPostprocess } from "./server.js";

const config = loadConfig(postprocessSettings);
const logger = createLogger("postprocess", config.logLevel);
closeOnSignals(await startPostprocess(config, logger), logger);
