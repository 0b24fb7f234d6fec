import { pino } from "pino";
import { traceLogFields, tracingEnabled } from "./tracing.js";

/** The logging surface domain code may use; pino satisfies it, and so does a test's own recorder. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
  /** Whether a level would be written; absent means every level is. */
  isLevelEnabled?(level: string): boolean;
}

/** With tracing on (started before), every line carries the active span's `trace_id` and `span_id`. */
export function createLogger(service: string, level = "info"): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(tracingEnabled() ? { mixin: traceLogFields } : {}),
  });
}
