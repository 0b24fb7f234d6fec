export { DdimScheduler } from "./ddim-scheduler.js";
export { DpmSolverMultistepScheduler } from "./dpm-solver-multistep-scheduler.js";
export { EulerAncestralScheduler } from "./euler-ancestral-scheduler.js";
export { EulerScheduler } from "./euler-scheduler.js";
export type { Scheduler, SchedulerKind, SchedulerState, StepOptions, StepResult } from "./scheduler.js";
export { SchedulerInputError } from "./scheduler-config.js";
