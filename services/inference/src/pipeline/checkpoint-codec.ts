import type { SchedulerState } from "../schedulers/index.js";

// Scheduler states hold Float32Arrays (multistep history); JSON carries them as base64 of their bytes.
const F32 = "$f32";

/** One JSON array of scheduler states, one per image row of a UNet batch. */
export function encodeSchedulerStates(states: readonly SchedulerState[]): string {
  return JSON.stringify(states, (_key, value) =>
    value instanceof Float32Array
      ? { [F32]: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") }
      : value,
  );
}

export function decodeSchedulerStates(json: string): unknown {
  return JSON.parse(json, (_key, value) => {
    if (value && typeof value === "object" && typeof value[F32] === "string") {
      const bytes = Buffer.from(value[F32], "base64");
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    }
    return value;
  });
}
