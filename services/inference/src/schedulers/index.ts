export { DdimScheduler } from "./ddim-scheduler.js";
export { DpmSolverMultistepScheduler } from "./dpm-solver-multistep-scheduler.js";
export { EulerAncestralScheduler } from "./euler-ancestral-scheduler.js";
export { EulerScheduler } from "./euler-scheduler.js";
export { HeunScheduler } from "./heun-scheduler.js";
export { LcmScheduler } from "./lcm-scheduler.js";
export type {
  Scheduler,
  SchedulerKind,
  SchedulerState,
  SolverMemoryValue,
  StepOptions,
  StepResult,
} from "./scheduler.js";
export { SchedulerInputError } from "./scheduler-config.js";
export {
  createScheduler,
  listSchedulers,
  type SchedulerInfo,
  type SchedulerOptionInfo,
} from "./scheduler-registry.js";
