import type { SchedulerState } from "../schedulers/index.js";

// Scheduler state holds Float32Arrays (multistep history); JSON carries them as base64 of their bytes.
const F32 = "$f32";

export function encodeSchedulerState(state: SchedulerState): string {
  return JSON.stringify(state, (_key, value) =>
    value instanceof Float32Array ? { [F32]: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") } : value,
  );
}

export function decodeSchedulerState(json: string): SchedulerState {
  return JSON.parse(json, (_key, value) => {
    if (value && typeof value === "object" && typeof value[F32] === "string") {
      const bytes = Buffer.from(value[F32], "base64");
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    }
    return value;
  }) as SchedulerState;
}
