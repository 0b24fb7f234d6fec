/** One device's memory as a replica reports it (from the device service on its host). */
export interface DeviceMemory {
  readonly deviceId: string;
  readonly totalBytes: number;
  /** Physically unused. */
  readonly freeBytes: number;
  /** Promised to workers by memory leases, which the device service counts against the total. */
  readonly leasedBytes: number;
}

/**
 * Memory new work may take on the device: what is physically free, and not promised by a lease either. Leases
 * are promises against the total (the device service's lease manager grants them so), so the smaller of free
 * and total less leased: exact once lease holders use what they leased, as the device assumes they may.
 */
export function usableBytes(memory: DeviceMemory): number {
  return Math.max(0, Math.min(memory.freeBytes, memory.totalBytes - memory.leasedBytes));
}
