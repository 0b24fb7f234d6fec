import type { Client } from "@connectrpc/connect";
import type { DeviceService } from "@dmesh/contracts/dmesh/device/v1/device_pb.js";

/**
 * Leases all of a device service's CPU memory but `leftBytes`, the way workers set memory aside, so that an
 * inference replica on that host reports room for that much; returns the lease id.
 */
export async function leaseAllBut(
  device: Client<typeof DeviceService>,
  leftBytes: number,
  holder: string,
): Promise<string> {
  const cpu = (await device.listDevices({})).devices.find((d) => d.id === "cpu");
  if (!cpu) throw new Error("the device service reports no cpu device");
  const { lease } = await device.acquireLease({
    deviceId: "cpu",
    holder,
    memoryBytes: cpu.memoryTotalBytes - cpu.memoryLeasedBytes - BigInt(leftBytes),
    ttlSeconds: 600,
  });
  return lease?.id ?? "";
}
