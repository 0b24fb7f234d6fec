export { DdimScheduler } from "./ddim-scheduler.js";
export type { Scheduler, SchedulerKind, SchedulerState, StepOptions, StepResult } from "./scheduler.js";
export { SchedulerInputError } from "./scheduler-config.js";
