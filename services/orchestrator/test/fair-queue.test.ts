import { describe, expect, it } from "vitest";
import { FairQueue } from "../src/sessions/fair-queue.js";
import { parseTenantQuotas, quotaOf } from "../src/sessions/tenant-quotas.js";

describe("FairQueue", () => {
  /** Takes everything, counting each taken session as running until the end. */
  const drainAll = (queue: FairQueue, running = new Map<string, number>(), mayRun = (_t: string) => true) => {
    const order: string[] = [];
    for (
      let next = queue.take((t) => running.get(t) ?? 0, mayRun);
      next;
      next = queue.take((t) => running.get(t) ?? 0, mayRun)
    ) {
      order.push(next.id);
      running.set(next.tenant, (running.get(next.tenant) ?? 0) + 1);
    }
    return order;
  };

  it("orders one tenant's sessions by priority, then by arrival", () => {
    const queue = new FairQueue();
    queue.push("low-1", "a", 0);
    queue.push("high", "a", 5);
    queue.push("low-2", "a", 0);
    queue.push("mid", "a", 1);
    expect(drainAll(queue)).toEqual(["high", "mid", "low-1", "low-2"]);
  });

  it("gives the next slot to the tenant with the fewest running, whatever the other has queued", () => {
    const queue = new FairQueue();
    for (let i = 0; i < 200; i++) queue.push(`a${i}`, "a", 0);
    const running = new Map([["a", 4]]);
    queue.push("b0", "b", 0);
    expect(
      queue.take(
        (t) => running.get(t) ?? 0,
        () => true,
      )?.id,
    ).toBe("b0");
    // Equal running: they alternate, the one served longest ago first.
    const even = new FairQueue();
    for (let i = 0; i < 3; i++) even.push(`a${i}`, "a", 9);
    for (let i = 0; i < 3; i++) even.push(`b${i}`, "b", 0);
    expect(drainAll(even)).toEqual(["a0", "b0", "a1", "b1", "a2", "b2"]);
  });

  it("skips a tenant at its running quota, and forgets removed sessions", () => {
    const queue = new FairQueue();
    queue.push("a0", "a", 0);
    queue.push("b0", "b", 0);
    queue.push("b1", "b", 0);
    expect(queue.remove("b0")).toBe(true);
    expect(queue.remove("b0")).toBe(false);
    expect(drainAll(queue, new Map(), (t) => t !== "a")).toEqual(["b1"]);
    expect([queue.size, queue.sizeOf("a"), queue.sizeOf("b")]).toEqual([1, 1, 0]);
  });
});

describe("TENANT_QUOTAS", () => {
  const base = { running: 4, queued: 1000, batchItems: 1000 };

  it("reads limits for everyone and per tenant, each over the one before", () => {
    const table = parseTenantQuotas("running=2, queued=50 ; acme:running=8,batch_items=5000");
    expect(quotaOf(table, base, "acme")).toEqual({ running: 8, queued: 50, batchItems: 5000 });
    expect(quotaOf(table, base, "globex")).toEqual({ running: 2, queued: 50, batchItems: 1000 });
    expect(quotaOf(parseTenantQuotas(""), base, "x")).toEqual(base);
  });

  it("says what is wrong with a bad entry", () => {
    expect(() => parseTenantQuotas("running=0")).toThrow("running must be an integer in [1, 1000000]");
    expect(() => parseTenantQuotas("acme:speed=2")).toThrow(
      '"speed=2" is not running=N, queued=N or batch_items=N',
    );
    expect(() => parseTenantQuotas("a b:running=1")).toThrow('"a b" is not a tenant name');
    expect(() => parseTenantQuotas("running=1;queued=2")).toThrow("only one entry may be for every tenant");
    expect(() => parseTenantQuotas("a:running=1;a:queued=2")).toThrow('tenant "a" is given twice');
  });
});
