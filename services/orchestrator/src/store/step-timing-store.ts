/** Measured step durations, by an estimate key (see workflows/duration-estimate.ts); newest kept per key. */
export interface StepTimingStore {
  record(key: string, seconds: number): Promise<void>;
  /** The mean of the kept measurements, undefined when there is none. */
  average(key: string): Promise<number | undefined>;
}

/** Measurements kept per key: an estimate follows the mesh as it is now. */
export const STEP_TIMINGS_KEPT = 20;
