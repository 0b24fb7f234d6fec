import { describe, expect, it } from "vitest";
import { InsufficientMemoryError } from "../../src/errors/insufficient-memory-error.js";
import type { Clock } from "../../src/leases/clock.js";
import { LeaseNotFoundError } from "../../src/leases/lease-not-found-error.js";
import {
  createMemoryLeaseManager,
  MAX_LEASE_TTL_SECONDS,
  type MemoryLease,
} from "../../src/leases/memory-lease-manager.js";
import { GIB } from "../../src/units/bytes.js";

/** Time that moves only when the test says so. */
function manualClock(start = 1_000_000): Clock & { advance(ms: number): void } {
  let now = start;
  return {
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

function setup() {
  const clock = manualClock();
  const expired: MemoryLease[] = [];
  const leases = createMemoryLeaseManager({ clock, defaultTtlMs: 30_000, onExpire: (l) => expired.push(l) });
  leases.setCapacity("cuda:0", 24 * GIB);
  return { clock, leases, expired };
}

describe("memory leases", () => {
  it("shares a GPU between two workers and refuses a third share that does not fit, saying what is free", () => {
    const { leases } = setup();
    const a = leases.acquire({ deviceId: "cuda:0", holder: "inference-a", bytes: 10 * GIB });
    const b = leases.acquire({ deviceId: "cuda:0", holder: "inference-b", bytes: 10 * GIB });
    expect(a.id).not.toBe(b.id);
    expect(leases.availableBytes("cuda:0")).toBe(4 * GIB);
    const attempt = () => leases.acquire({ deviceId: "cuda:0", holder: "inference-c", bytes: 6 * GIB });
    expect(attempt).toThrow(InsufficientMemoryError);
    expect(attempt).toThrow("cuda:0: 6.0 GiB requested but only 4.0 GiB free");
    expect(attempt).toThrow(expect.objectContaining({ freeBytes: 4 * GIB, requestedBytes: 6 * GIB }));
  });

  it("lets a lease lapse when its holder stops renewing, and keeps a renewed one", () => {
    const { clock, leases, expired } = setup();
    const dead = leases.acquire({ deviceId: "cuda:0", holder: "crashed-worker", bytes: 20 * GIB });
    const alive = leases.acquire({
      deviceId: "cuda:0",
      holder: "live-worker",
      bytes: 4 * GIB,
      ttlMs: 10_000,
    });
    for (let beat = 0; beat < 5; beat++) {
      clock.advance(8_000);
      expect(leases.renew(alive.id).expiresAt).toBe(clock.now() + 10_000);
    }
    // 40 s have passed: the 30 s lease of the crashed worker is gone, its memory free again.
    expect(expired.map((l) => l.holder)).toEqual(["crashed-worker"]);
    expect(leases.leases("cuda:0").map((l) => l.id)).toEqual([alive.id]);
    expect(leases.availableBytes("cuda:0")).toBe(20 * GIB);
    expect(() => leases.renew(dead.id)).toThrow(LeaseNotFoundError);
  });

  it("expires exactly at the TTL", () => {
    const { clock, leases } = setup();
    const lease = leases.acquire({ deviceId: "cuda:0", holder: "w", bytes: GIB });
    clock.advance(29_999);
    expect(leases.leases()).toHaveLength(1);
    clock.advance(1);
    expect(leases.leases()).toHaveLength(0);
    expect(() => leases.renew(lease.id)).toThrow(`lease ${lease.id} does not exist`);
  });

  it("frees memory on release, once", () => {
    const { leases } = setup();
    const lease = leases.acquire({ deviceId: "cuda:0", holder: "w", bytes: 24 * GIB });
    expect(leases.availableBytes("cuda:0")).toBe(0);
    expect(leases.release(lease.id)).toBe(true);
    expect(leases.release(lease.id)).toBe(false);
    expect(leases.availableBytes("cuda:0")).toBe(24 * GIB);
  });

  it("keeps devices apart and lowering capacity blocks new leases only", () => {
    const { leases } = setup();
    leases.setCapacity("cuda:1", 8 * GIB);
    leases.acquire({ deviceId: "cuda:0", holder: "w", bytes: 20 * GIB });
    expect(leases.availableBytes("cuda:1")).toBe(8 * GIB);
    leases.setCapacity("cuda:0", 16 * GIB);
    expect(leases.leases("cuda:0")).toHaveLength(1);
    expect(leases.availableBytes("cuda:0")).toBe(0);
  });

  it("validates requests with field names", () => {
    const { leases } = setup();
    const base = { deviceId: "cuda:0", holder: "w", bytes: GIB };
    expect(() => leases.acquire({ ...base, deviceId: "cuda:7" })).toThrow(
      expect.objectContaining({
        field: "deviceId",
        message: "deviceId: unknown device cuda:7 (known: cuda:0)",
      }),
    );
    expect(() => leases.acquire({ ...base, bytes: 0 })).toThrow(expect.objectContaining({ field: "bytes" }));
    expect(() => leases.acquire({ ...base, holder: "" })).toThrow(
      expect.objectContaining({ field: "holder" }),
    );
    expect(() => leases.acquire({ ...base, ttlMs: 3_600_000 })).toThrow(
      expect.objectContaining({ field: "ttlMs" }),
    );
    expect(() => leases.acquire({ ...base, ttlMs: MAX_LEASE_TTL_SECONDS * 1000 + 1 })).toThrow(
      expect.objectContaining({ field: "ttlMs" }),
    );
    expect(leases.acquire({ ...base, ttlMs: MAX_LEASE_TTL_SECONDS * 1000 }).ttlMs).toBe(
      MAX_LEASE_TTL_SECONDS * 1000,
    );
    expect(() => leases.setCapacity("cuda:0", -1)).toThrow(expect.objectContaining({ field: "bytes" }));
  });
});
