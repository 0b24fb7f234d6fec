export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** Human-readable binary size for messages: "1.5 GiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}
