import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";

export function stateName(state: SessionState): string {
  return state === SessionState.UNSPECIFIED ? "waiting" : (SessionState[state]?.toLowerCase() ?? "unknown");
}

export function isFinished(state: SessionState): boolean {
  return (
    state === SessionState.COMPLETED || state === SessionState.FAILED || state === SessionState.CANCELLED
  );
}

export function seconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function bytes(n: bigint | number): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let x = v / 1024;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${x.toFixed(x < 10 ? 1 : 0)} ${units[u]}`;
}

export function millis(t: Timestamp | undefined): number {
  return t ? timestampDate(t).getTime() : 0;
}

export function when(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toLocaleString() : "";
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
