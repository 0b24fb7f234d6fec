import { randomUUID } from "node:crypto";
import { InvalidArgumentError } from "@dmesh/runtime/errors";
import { InsufficientMemoryError } from "../errors/insufficient-memory-error.js";
import { type Clock, systemClock } from "./clock.js";
import { LeaseNotFoundError } from "./lease-not-found-error.js";

/** A share of one device's memory held by one worker until it expires or is released. */
export interface MemoryLease {
  readonly id: string;
  readonly deviceId: string;
  readonly holder: string;
  readonly bytes: number;
  /** Each renewal extends the lease this long from the moment of renewal. */
  readonly ttlMs: number;
  readonly expiresAt: number;
}

export interface AcquireRequest {
  readonly deviceId: string;
  readonly holder: string;
  readonly bytes: number;
  readonly ttlMs?: number;
}

export interface MemoryLeaseManager {
  /** Sets how many bytes of a device can be leased in total (e.g. its memory less a reserve). */
  setCapacity(deviceId: string, bytes: number): void;
  /** Grants a lease or throws InsufficientMemoryError saying how much is free. */
  acquire(request: AcquireRequest): MemoryLease;
  /** Heartbeat: extends a live lease by its TTL (or a new `ttlMs`); throws LeaseNotFoundError once expired. */
  renew(leaseId: string, ttlMs?: number): MemoryLease;
  /** Gives the memory back; false when the lease was already gone. */
  release(leaseId: string): boolean;
  availableBytes(deviceId: string): number;
  leases(deviceId?: string): MemoryLease[];
}

/**
 * The longest a lease may run without renewal, asked for or configured: memory a dead worker held is back
 * within 10 minutes at most.
 */
export const MAX_LEASE_TTL_SECONDS = 600;

export interface MemoryLeaseManagerOptions {
  readonly clock?: Clock;
  /** TTL of a lease that asks for none (the service's LEASE_TTL_SECONDS), at most MAX_LEASE_TTL_SECONDS. */
  readonly defaultTtlMs: number;
  /** Told about each lease that lapsed without renewal (its holder likely died), for logging. */
  readonly onExpire?: (lease: MemoryLease) => void;
}

/**
 * Keeps two inference workers from oversubscribing one GPU: each holds a lease on the memory it
 * plans to use, renews it while alive, and a dead worker's lease lapses after its TTL.
 * In-memory and per process: the device service owns it for its node.
 */
export function createMemoryLeaseManager(options: MemoryLeaseManagerOptions): MemoryLeaseManager {
  const clock = options.clock ?? systemClock;
  const maxTtlMs = MAX_LEASE_TTL_SECONDS * 1000;
  const capacities = new Map<string, number>();
  const live = new Map<string, MemoryLease>();

  // Expiry is checked lazily on every call, against the injected clock: no timers to leak or fake.
  const expire = () => {
    const now = clock.now();
    for (const lease of [...live.values()]) {
      if (lease.expiresAt > now) continue;
      live.delete(lease.id);
      options.onExpire?.(lease);
    }
  };
  const leasedBytes = (deviceId: string) =>
    [...live.values()].filter((l) => l.deviceId === deviceId).reduce((sum, l) => sum + l.bytes, 0);
  const checkTtl = (ttlMs: number | undefined) => {
    const ttl = ttlMs ?? options.defaultTtlMs;
    if (!Number.isFinite(ttl) || ttl <= 0 || ttl > maxTtlMs) {
      throw new InvalidArgumentError("ttlMs", `must be above 0 and at most ${maxTtlMs}, got ${ttl}`);
    }
    return ttl;
  };
  const capacityOf = (deviceId: string) => {
    const capacity = capacities.get(deviceId);
    if (capacity === undefined) {
      const known = [...capacities.keys()].join(", ") || "none";
      throw new InvalidArgumentError("deviceId", `unknown device ${deviceId} (known: ${known})`);
    }
    return capacity;
  };

  return {
    setCapacity(deviceId, bytes) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        throw new InvalidArgumentError("bytes", `must be a non-negative integer, got ${bytes}`);
      }
      capacities.set(deviceId, bytes);
    },

    acquire(request) {
      expire();
      if (typeof request.holder !== "string" || request.holder === "") {
        throw new InvalidArgumentError("holder", "must name the worker holding the lease");
      }
      if (!Number.isSafeInteger(request.bytes) || request.bytes <= 0) {
        throw new InvalidArgumentError("bytes", `must be a positive integer, got ${request.bytes}`);
      }
      const ttl = checkTtl(request.ttlMs);
      const free = Math.max(0, capacityOf(request.deviceId) - leasedBytes(request.deviceId));
      if (request.bytes > free) throw new InsufficientMemoryError(request.deviceId, request.bytes, free);
      const lease: MemoryLease = {
        id: randomUUID(),
        deviceId: request.deviceId,
        holder: request.holder,
        bytes: request.bytes,
        ttlMs: ttl,
        expiresAt: clock.now() + ttl,
      };
      live.set(lease.id, lease);
      return lease;
    },

    renew(leaseId, ttlMs) {
      expire();
      const lease = live.get(leaseId);
      if (!lease) throw new LeaseNotFoundError(leaseId);
      const ttl = ttlMs === undefined ? lease.ttlMs : checkTtl(ttlMs);
      const renewed = { ...lease, ttlMs: ttl, expiresAt: clock.now() + ttl };
      live.set(leaseId, renewed);
      return renewed;
    },

    release(leaseId) {
      expire();
      return live.delete(leaseId);
    },

    availableBytes(deviceId) {
      expire();
      return Math.max(0, capacityOf(deviceId) - leasedBytes(deviceId));
    },

    leases(deviceId) {
      expire();
      return [...live.values()].filter((lease) => deviceId === undefined || lease.deviceId === deviceId);
    },
  };
}
