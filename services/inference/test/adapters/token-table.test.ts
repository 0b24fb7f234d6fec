import { join } from "node:path";
import { cpuSessionSettings, createPatchedSession, readOnnxModel } from "@dmesh/onnx";
import { writeTinyModel } from "@dmesh/tiny-model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findTokenTable, maskNewIdsForPooling } from "../../src/adapters/token-table.js";
import { tempDir } from "./support.js";

// New token ids past the vocabulary (textual-inversion vectors) must not move CLIP's pooling, which takes
// the position of argmax(input_ids): the first EOS, as long as EOS is the largest id.

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir("token-table");
  await writeTinyModel(join(dir.path, "sd"), { kind: "sd15" });
  await writeTinyModel(join(dir.path, "exported"), { kind: "sd15", naming: "exported" });
});
afterAll(async () => {
  await dir.remove();
});

describe.each(["sd", "exported"])("a grown token table (%s naming)", (name) => {
  it("is found by the Gather that input_ids index, and pooling still finds EOS", async () => {
    const model = await readOnnxModel(join(dir.path, name, "text_encoder", "model.onnx"));
    const table = findTokenTable(model);
    expect(table?.rows).toBeGreaterThan(2);
    if (!table) return;
    const stored = await model.readFloat32(table.initializer);
    const grown = new Float32Array((table.rows + 2) * table.width);
    grown.set(stored);
    grown.fill(0.5, table.rows * table.width);
    const eos = table.rows - 1;
    const newId = table.rows + 1;
    const ids = new Int32Array(16).fill(eos);
    ids.set([0, newId, 5, eos]);
    const run = async (masked: boolean) => {
      const patched = await createPatchedSession(
        model,
        new Map([[table.initializer, { data: grown, dims: [table.rows + 2, table.width] }]]),
        {
          name: "text_encoder",
          settings: cpuSessionSettings(1),
          ...(masked ? { transformGraph: maskNewIdsForPooling(table.rows) } : {}),
        },
      );
      try {
        return await patched.session.run(
          { input_ids: { data: ids, dims: [1, ids.length] } },
          {
            outputs: ["last_hidden_state", "pooler_output"],
          },
        );
      } finally {
        await patched.release();
      }
    };
    const at = (out: Awaited<ReturnType<typeof run>>, position: number) => {
      const hidden = out.last_hidden_state;
      const width = hidden?.dims[2] ?? 0;
      return Array.from(hidden?.data.subarray(position * width, (position + 1) * width) ?? []);
    };
    const masked = await run(true);
    expect(Array.from(masked.pooler_output?.data ?? [])).toEqual(at(masked, 3));
    // Without the mask the new id wins the argmax: what the mask is there for.
    const unmasked = await run(false);
    expect(Array.from(unmasked.pooler_output?.data ?? [])).toEqual(at(unmasked, 1));
  });
});
