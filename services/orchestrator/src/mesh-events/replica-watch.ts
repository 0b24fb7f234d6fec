import type { DescService } from "@bufbuild/protobuf";
import { MeshEventKind } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import type { ReplicaPool } from "../clients/replica-pool.js";
import { usableBytes } from "../mesh/device-memory.js";
import { type MeshEventHub, type MeshEventInit, meshEvent } from "./mesh-event-hub.js";

/** A device with less than this share of its memory usable (free and unleased) is reported low. */
export const LOW_MEMORY_SHARE = 0.1;

interface Seen {
  domain: string;
  address: string;
  reason: string;
  healthy: boolean;
  warm: Set<string>;
  memoryLow: boolean;
}

/**
 * Turns what the replica pools learn at each health check into mesh events: a replica down or up again, models
 * loaded or unloaded, a device's memory running low. Each is told once, when it changes.
 */
export class ReplicaWatch {
  private readonly seen = new Map<string, Seen>();

  constructor(
    // biome-ignore lint/suspicious/noExplicitAny: pools of any domain service
    private readonly pools: readonly ReplicaPool<any>[],
    private readonly hub: MeshEventHub,
  ) {
    hub.snapshotFrom(() => [...this.seen.values()].map((s) => meshEvent(replicaEvent(s))));
  }

  /** Compares every replica with what the previous observation saw; call it after each round of health checks. */
  observe(): void {
    for (const pool of this.pools) this.observePool(pool);
  }

  private observePool<S extends DescService>(pool: ReplicaPool<S>): void {
    const present = new Set<string>();
    for (const r of pool.all()) {
      const key = `${pool.domain} ${r.address}`;
      present.add(key);
      const before = this.seen.get(key);
      const memoryLow =
        r.memory !== undefined &&
        r.memory.totalBytes > 0 &&
        usableBytes(r.memory) < r.memory.totalBytes * LOW_MEMORY_SHARE;
      const now: Seen = {
        domain: pool.domain,
        address: r.address,
        reason: r.healthy ? "" : r.lastError,
        healthy: r.healthy,
        warm: new Set(r.warm),
        memoryLow,
      };
      this.seen.set(key, now);
      if (before?.healthy !== now.healthy) this.hub.publish(replicaEvent(now));
      // What an unreachable replica has loaded is unknown, not unloaded: models are compared while it answers,
      // against what it had when last seen answering.
      if (now.healthy) {
        const warmBefore = before?.warm ?? new Set<string>();
        for (const model of now.warm)
          if (!warmBefore.has(model)) this.model(MeshEventKind.MODEL_LOADED, r.address, model);
        for (const model of warmBefore)
          if (!now.warm.has(model)) this.model(MeshEventKind.MODEL_UNLOADED, r.address, model);
      } else now.warm = before?.warm ?? new Set();
      if (memoryLow && !before?.memoryLow && r.memory) {
        this.hub.publish({
          kind: MeshEventKind.DEVICE_MEMORY_LOW,
          detail: {
            case: "deviceMemory",
            value: {
              address: r.address,
              deviceId: r.memory.deviceId,
              freeBytes: BigInt(r.memory.freeBytes),
              totalBytes: BigInt(r.memory.totalBytes),
              leasedBytes: BigInt(r.memory.leasedBytes),
            },
          },
        });
      }
    }
    for (const key of this.seen.keys())
      if (key.startsWith(`${pool.domain} `) && !present.has(key)) this.seen.delete(key);
  }

  private model(kind: MeshEventKind, address: string, model: string): void {
    this.hub.publish({ kind, detail: { case: "model", value: { address, model } } });
  }
}

function replicaEvent(seen: Seen): MeshEventInit {
  return {
    kind: seen.healthy ? MeshEventKind.REPLICA_UP : MeshEventKind.REPLICA_DOWN,
    detail: { case: "replica", value: { domain: seen.domain, address: seen.address, reason: seen.reason } },
  };
}
