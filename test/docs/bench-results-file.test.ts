import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { versus } from "../../bench/bench-result.js";
import { writeResultsFile } from "../../bench/results-file.js";

/** Figures live in bench/results/, one small file per `npm run bench` run, not in service READMEs. */
describe("a bench run's results file", () => {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-bench-results-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const results = [
    versus("hop p50 (dmesh)", 0.31, "ms", { name: "bare grpc-js", value: 0.29 }, { max: 1.1 }),
    versus("images/s (shm)", 5.2, "img/s", { name: "sharp direct", value: 5.8 }, { min: 0.9 }),
  ];
  const run = {
    date: new Date("2026-12-08T01:02:03.456Z"),
    suites: ["transport", "postprocess"],
    machine: "2 × Test CPU, Node v20.20.2",
    seconds: 61.4,
    commit: "0b8a9e7 + changes",
  };

  it("holds the table, the command that reruns it, the commit and the machine, named by time and suites", () => {
    const path = writeResultsFile(dir, run, results);
    expect(path).toBe(join(dir, "2026-12-08T01-02-03-transport-postprocess.md"));
    const text = readFileSync(path, "utf8");
    expect(text).toContain("`node bench/dist/main.js transport postprocess`");
    expect(text).toContain(
      "- commit: 0b8a9e7 + changes\n- machine: 2 × Test CPU, Node v20.20.2\n- took: 61 s",
    );
    expect(text).toMatch(/^hop p50 \(dmesh\)\s+0\.31\s+ms\s+bare grpc-js\s+0\.29\s+1\.07x\s+≤ 1\.10 ok$/m);
    expect(text).toMatch(
      /^images\/s \(shm\)\s+5\.20\s+img\/s\s+sharp direct\s+5\.80\s+0\.90x\s+≥ 0\.90 MISSED$/m,
    );
    expect(text.split("\n").length).toBeLessThan(20);
  });

  it("never overwrites an earlier run's file", () => {
    expect(() => writeResultsFile(dir, run, results)).toThrow(/EEXIST/);
    expect(readdirSync(dir)).toHaveLength(1);
  });
});
