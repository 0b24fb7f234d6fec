export { orchestratorSettings } from "./config.js";
export { type Orchestrator, type OrchestratorConfig, startOrchestrator } from "./server.js";
