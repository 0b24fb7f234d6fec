import { describe, expect, it } from "vitest";
import { consoleBlocks, lineShape, matchShown } from "./readme-console.js";

describe("reading the README's console blocks", () => {
  it("takes commands with their continuation lines, trailing comments and the output shown under them", () => {
    const markdown = [
      "text",
      "```console",
      "$ npx dmesh workflows       # txt2img, img2img",
      "txt2img",
      "$ curl -s -d '{}' \\",
      "    http://127.0.0.1:50051/x",
      "```",
      "```ts",
      "$ not a console block",
      "```",
    ].join("\n");
    expect(consoleBlocks(markdown)).toEqual([
      [
        { command: "npx dmesh workflows", comment: "txt2img, img2img", shownOutput: ["txt2img"] },
        { command: "curl -s -d '{}' http://127.0.0.1:50051/x", comment: "", shownOutput: [] },
      ],
    ]);
  });

  it("matches a shown line's words, not its numbers, ids or the directory of its .dmesh paths", () => {
    const wrote = lineShape(
      "dmesh: wrote .dmesh/out/1ba90ee4-f5d0-4ecf-b9de-e0849bd4e9e6-0.png (660 KiB) in 2.7 s",
    );
    expect(
      wrote.test(
        "dmesh: wrote /tmp/x/.dmesh/out/0a0b0c0d-0000-4000-8000-00000000000a-0.png (3 KiB) in 0.4 s",
      ),
    ).toBe(true);
    expect(
      wrote.test("dmesh: wrote .dmesh/out/0a0b0c0d-0000-4000-8000-00000000000a-0.jpg (3 KiB) in 0.4 s"),
    ).toBe(false);
    const bar = lineShape("batch [##############################] 6/6 0 failed");
    expect(bar.test("batch 4/4 0 failed")).toBe(true);
    expect(bar.test("batch 4/4 1 cancelled")).toBe(false);
  });

  it("finds the shown lines in order among more, and names the first it cannot find", () => {
    const output = "session 0a0b0c0d-0000-4000-8000-00000000000a\ngenerate 1/4\ngenerate 4/4 \ndone\n";
    expect(matchShown(["generate [####] 20/20", "done"], output)).toEqual({
      matched: ["generate 4/4", "done"],
    });
    expect(matchShown(["done", "generate [####] 20/20"], output)).toEqual({
      missing: "generate [####] 20/20",
    });
  });
});
