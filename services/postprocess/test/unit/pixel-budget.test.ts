import { describe, expect, it } from "vitest";
import { PixelBudget } from "../../src/limits/pixel-budget.js";

describe("PixelBudget", () => {
  it("never lets the pixels held exceed the capacity, and serves waiters first in, first out", async () => {
    const budget = new PixelBudget(100);
    const order: string[] = [];
    let peak = 0;
    const job = (name: string, pixels: number, ms: number) =>
      budget.use(pixels, undefined, async () => {
        order.push(name);
        peak = Math.max(peak, budget.used);
        await new Promise((r) => setTimeout(r, ms));
      });
    await Promise.all([job("a", 60, 20), job("big", 90, 5), job("b", 30, 5), job("c", 10, 5)]);
    expect(peak).toBeLessThanOrEqual(100);
    // "b" and "c" would fit beside "a", but "big" came first and is not starved by them.
    expect(order).toEqual(["a", "big", "b", "c"]);
    expect(budget.used).toBe(0);
  });

  it("runs a request larger than the whole budget alone instead of never", async () => {
    const budget = new PixelBudget(100);
    const lease = await budget.acquire(1_000_000);
    expect(lease.pixels).toBe(100);
    const waiting = budget.acquire(1);
    expect(budget.waiting).toBe(1);
    lease.release();
    lease.release();
    (await waiting).release();
    expect(budget.used).toBe(0);
  });

  it("drops a waiter whose signal aborts, with the signal's reason, and serves those behind it", async () => {
    const budget = new PixelBudget(10);
    const held = await budget.acquire(8);
    const abort = new AbortController();
    const blocked = budget.acquire(5, abort.signal);
    const small = budget.acquire(2);
    abort.abort(new Error("client went away"));
    await expect(blocked).rejects.toThrow("client went away");
    const lease = await small;
    expect(budget.used).toBe(10);
    lease.release();
    held.release();
    expect([budget.used, budget.waiting]).toEqual([0, 0]);
  });
});
