import { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { createLogger } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { ReplicaPool } from "../src/clients/replica-pool.js";
import { AddressDiscovery, type LookupAll } from "../src/mesh/address-discovery.js";

const logger = createLogger("test", "silent");

describe("AddressDiscovery", () => {
  it("resolves dns:///localhost:port to every address of localhost, beside static entries", async () => {
    const discovery = new AddressDiscovery(
      "inference",
      ["dns:///localhost:50070", "10.0.0.7:50052", "127.0.0.1:50070"],
      logger,
    );
    expect(discovery.usesDns).toBe(true);
    const addresses = await discovery.resolve();
    expect(addresses).toContain("127.0.0.1:50070");
    expect(addresses).toContain("10.0.0.7:50052");
    // Every address once (the static 127.0.0.1 entry and the name's IPv4 address coincide), IPv6 bracketed.
    expect(new Set(addresses).size).toBe(addresses.length);
    for (const a of addresses) expect(a).toMatch(/^(\d+\.\d+\.\d+\.\d+|\[[\da-f:]+\]):\d+$/);
  });

  it("leaves static lists alone", async () => {
    const discovery = new AddressDiscovery("postprocess", ["127.0.0.1:1", "127.0.0.1:2"], logger);
    expect(discovery.usesDns).toBe(false);
    expect(await discovery.resolve()).toEqual(["127.0.0.1:1", "127.0.0.1:2"]);
  });

  // The name's answers change as pods come and go; a failed lookup keeps the last answer.
  it("refreshes the replica pool as the name's addresses change, keeping them through a failed lookup", async () => {
    const answers: ({ address: string; family: number }[] | Error)[] = [
      [{ address: "10.0.0.1", family: 4 }],
      [
        { address: "10.0.0.1", family: 4 },
        { address: "10.0.0.2", family: 4 },
        { address: "fd00::3", family: 6 },
      ],
      new Error("getaddrinfo EAI_AGAIN inference"),
      [{ address: "10.0.0.2", family: 4 }],
    ];
    let calls = 0;
    const lookup: LookupAll = async () => {
      const answer = answers[Math.min(calls++, answers.length - 1)];
      if (answer instanceof Error) throw answer;
      return answer ?? [];
    };
    const discovery = new AddressDiscovery("inference", ["dns:///inference:50052"], logger, lookup);
    const initial = await discovery.resolve();
    expect(initial).toEqual(["10.0.0.1:50052"]);
    const pool = new ReplicaPool("inference", InferenceService, initial, logger, 1024 * 1024);
    const seen: string[][] = [];
    try {
      discovery.refreshEvery(20, initial, (addresses) => {
        seen.push(addresses);
        pool.setAddresses(addresses);
      });
      const deadline = Date.now() + 5000;
      while (calls < answers.length + 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally {
      discovery.close();
    }
    // The failed lookup (third answer) kept three replicas; only real changes were applied.
    expect(seen).toEqual([["10.0.0.1:50052", "10.0.0.2:50052", "[fd00::3]:50052"], ["10.0.0.2:50052"]]);
    expect(pool.all().map((r) => r.address)).toEqual(["10.0.0.2:50052"]);
    pool.close();
  });
});

describe("ReplicaPool", () => {
  it("prefers healthy, least-loaded replicas not just tried, and still offers one when none is healthy", () => {
    const pool = new ReplicaPool(
      "inference",
      InferenceService,
      ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
      logger,
      1024 * 1024,
    );
    try {
      const [a, b, c] = pool.all();
      if (!a || !b || !c) throw new Error("three replicas");
      a.inFlight = 2;
      b.inFlight = 1;
      c.inFlight = 1;
      expect(pool.pick().address).toBe(b.address);
      expect(pool.pick(new Set([b.address])).address).toBe(c.address);
      pool.markDown(c.address, "connection refused");
      expect(pool.pick(new Set([b.address])).address).toBe(a.address);
      expect(pool.hasHealthy(new Set([a.address, b.address]))).toBe(false);
      pool.markDown(a.address, "gone");
      pool.markDown(b.address, "gone");
      expect(pool.hasHealthy()).toBe(false);
      // None healthy: the least loaded is still tried, so the call fails with its real reason (or works).
      expect([b.address, c.address]).toContain(pool.pick().address);
      pool.setAddresses([]);
      expect(() => pool.pick()).toThrow(/no inference replica is configured or resolved/);
    } finally {
      pool.close();
    }
  });
});
