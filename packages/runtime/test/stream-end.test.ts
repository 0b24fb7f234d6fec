import { describe, expect, it } from "vitest";
import { LEFT_EARLY, onStreamEnd } from "../src/index.js";

async function* numbers(fail?: Error) {
  yield 1;
  yield 2;
  if (fail) throw fail;
}

describe("onStreamEnd", () => {
  it("passes every message through and reports the end once", async () => {
    const ends: unknown[] = [];
    const seen: number[] = [];
    for await (const n of onStreamEnd(numbers(), (err) => ends.push(err))) seen.push(n);
    expect(seen).toEqual([1, 2]);
    expect(ends).toEqual([undefined]);
  });

  it("reports a failure and throws what the callback returns in its place", async () => {
    const boom = new Error("boom");
    const mapped = new Error("mapped");
    const ends: unknown[] = [];
    const reading = (async () => {
      const onEnd = (err: unknown) => {
        ends.push(err);
        return mapped;
      };
      for await (const _ of onStreamEnd(numbers(boom), onEnd));
    })();
    await expect(reading).rejects.toBe(mapped);
    expect(ends).toEqual([boom]);
  });

  it("rethrows the failure itself when the callback returns nothing", async () => {
    const boom = new Error("boom");
    const reading = (async () => {
      for await (const _ of onStreamEnd(numbers(boom), () => undefined));
    })();
    await expect(reading).rejects.toBe(boom);
  });

  it("reports a reader that leaves early, once, and closes the source", async () => {
    const ends: unknown[] = [];
    let closed = false;
    async function* source() {
      try {
        yield 1;
        yield 2;
      } finally {
        closed = true;
      }
    }
    for await (const n of onStreamEnd(source(), (err) => ends.push(err))) if (n === 1) break;
    expect(ends).toEqual([LEFT_EARLY]);
    expect(closed).toBe(true);
  });
});
