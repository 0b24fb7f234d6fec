export { DdimScheduler } from "./ddim-scheduler.js";
export { DeisScheduler } from "./deis-scheduler.js";
export { DpmSolverMultistepScheduler } from "./dpm-solver-multistep-scheduler.js";
export { DpmSolverSinglestepScheduler } from "./dpm-solver-singlestep-scheduler.js";
export { EdmEulerScheduler } from "./edm-euler-scheduler.js";
export { EulerAncestralScheduler } from "./euler-ancestral-scheduler.js";
export { EulerScheduler } from "./euler-scheduler.js";
export { HeunScheduler } from "./heun-scheduler.js";
export { Kdpm2AncestralScheduler } from "./kdpm2-ancestral-scheduler.js";
export { Kdpm2Scheduler } from "./kdpm2-scheduler.js";
export { LcmScheduler } from "./lcm-scheduler.js";
export { LmsScheduler } from "./lms-scheduler.js";
export { PndmScheduler } from "./pndm-scheduler.js";
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
export { UnipcScheduler } from "./unipc-scheduler.js";
