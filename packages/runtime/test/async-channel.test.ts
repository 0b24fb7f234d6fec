import { describe, expect, it } from "vitest";
import { AsyncChannel } from "../src/async-channel.js";

async function drain<T>(channel: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of channel) out.push(value);
  return out;
}

describe("AsyncChannel", () => {
  it("hands pushed values to a waiting consumer in order, and ends after close once the buffer is consumed", async () => {
    const channel = new AsyncChannel<number>();
    const consumed = drain(channel);
    channel.push(1); // the consumer is already waiting: this wakes it
    await Promise.resolve();
    channel.push(2);
    channel.push(3);
    channel.close();
    channel.push(4); // after close: ignored
    expect(await consumed).toEqual([1, 2, 3]);
    expect(channel.closed).toBe(true);
  });

  it("throws the close error after the values pushed before it", async () => {
    const channel = new AsyncChannel<string>();
    channel.push("progress");
    channel.close(new Error("model failed"));
    channel.close(); // a second close changes nothing
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const value of channel) seen.push(value);
      })(),
    ).rejects.toThrow("model failed");
    expect(seen).toEqual(["progress"]);
  });

  it("sheds what the consumer can do without once it falls maxBuffered behind", async () => {
    const channel = new AsyncChannel<string>({
      maxBuffered: 3,
      shed: (buffered) => buffered.findIndex((e) => e.startsWith("progress")),
    });
    for (const e of ["state", "progress 1", "progress 2", "progress 3", "artifact", "state end"])
      channel.push(e);
    channel.close();
    // Each push past three drops the oldest progress event: p1, then p2, then p3.
    expect(await drain(channel)).toEqual(["state", "artifact", "state end"]);
  });

  it("keeps everything when shed finds nothing to drop", async () => {
    const channel = new AsyncChannel<string>({ maxBuffered: 1, shed: () => -1 });
    for (const e of ["a", "b", "c"]) channel.push(e);
    channel.close();
    expect(await drain(channel)).toEqual(["a", "b", "c"]);
  });
});
