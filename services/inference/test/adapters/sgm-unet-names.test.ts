import { tinyAdapterDims, tinyAdapterModules } from "@dmesh/tiny-model";
import { describe, expect, it } from "vitest";
import {
  createModuleIndex,
  type ModuleWeight,
  sgmModulePath,
  unetLayoutOf,
} from "../../src/adapters/index.js";

/** The module paths of SDXL's real UNet (block_out_channels 320/640/1280, layers_per_block 2, depth 2/10). */
function sdxlUnetPaths(): string[] {
  const paths = ["conv_in", "time_embedding.linear_1", "time_embedding.linear_2", "add_embedding.linear_1"];
  paths.push("add_embedding.linear_2", "conv_norm_out", "conv_out");
  const resnet = (p: string, shortcut: boolean) => {
    for (const part of ["norm1", "conv1", "time_emb_proj", "norm2", "conv2"]) paths.push(`${p}.${part}`);
    if (shortcut) paths.push(`${p}.conv_shortcut`);
  };
  const attention = (p: string, depth: number) => {
    paths.push(`${p}.norm`, `${p}.proj_in`, `${p}.proj_out`);
    for (let k = 0; k < depth; k++) {
      for (const a of ["attn1", "attn2"])
        for (const q of ["to_q", "to_k", "to_v", "to_out.0"])
          paths.push(`${p}.transformer_blocks.${k}.${a}.${q}`);
      paths.push(`${p}.transformer_blocks.${k}.ff.net.0.proj`, `${p}.transformer_blocks.${k}.ff.net.2`);
    }
  };
  const depth = [0, 2, 10];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 2; j++) {
      resnet(`down_blocks.${i}.resnets.${j}`, i > 0 && j === 0);
      if (depth[i]) attention(`down_blocks.${i}.attentions.${j}`, depth[i] as number);
    }
    if (i < 2) paths.push(`down_blocks.${i}.downsamplers.0.conv`);
  }
  resnet("mid_block.resnets.0", false);
  attention("mid_block.attentions.0", 10);
  resnet("mid_block.resnets.1", false);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      resnet(`up_blocks.${i}.resnets.${j}`, true);
      if (depth[2 - i]) attention(`up_blocks.${i}.attentions.${j}`, depth[2 - i] as number);
    }
    if (i < 2) paths.push(`up_blocks.${i}.upsamplers.0.conv`);
  }
  return paths;
}

/**
 * diffusers' SGM → diffusers mapping, transcribed from `_maybe_map_sgm_blocks_to_diffusers` (block
 * numbers) and `_convert_unet_lora_key` (resnet parts, `op`), on dotted names. Undefined where diffusers
 * maps nothing (norms; blocks outside down/mid/up).
 */
function diffusersFromSgm(sgm: string, layersPerBlock: number): string | undefined {
  const parts = sgm.split(".");
  const [block, idText, subText] = parts;
  const id = Number(idText);
  let rest = parts.slice(3);
  const inner = ["resnets", "attentions", "upsamplers"];
  let head: string[];
  if (block === "input_blocks") {
    const op = rest.join(".") === "op";
    head = [
      "down_blocks",
      String(Math.floor((id - 1) / (layersPerBlock + 1))),
      op ? "downsamplers" : (inner[Number(subText)] as string),
      op ? "0" : String((id - 1) % (layersPerBlock + 1)),
    ];
    if (op) rest = ["conv"];
  } else if (block === "middle_block") {
    head = [
      "mid_block",
      ...([
        ["resnets", "0"],
        ["attentions", "0"],
        ["resnets", "1"],
      ][id] as string[]),
    ];
    rest = parts.slice(2);
  } else if (block === "output_blocks") {
    const sub = Number(subText);
    head = [
      "up_blocks",
      String(Math.floor(id / (layersPerBlock + 1))),
      inner[sub] as string,
      sub < 2 ? String(id % (layersPerBlock + 1)) : "0",
    ];
  } else {
    return undefined;
  }
  const resnetParts: Record<string, string> = {
    "in_layers.2": "conv1",
    "out_layers.3": "conv2",
    "emb_layers.1": "time_emb_proj",
    skip_connection: "conv_shortcut",
  };
  let tail = rest.join(".");
  if (head.includes("resnets")) {
    const mapped = resnetParts[tail];
    if (mapped === undefined) return undefined;
    tail = mapped;
  }
  return [...head, tail].join(".");
}

describe("SGM block names ↔ diffusers modules", () => {
  const sdxl = sdxlUnetPaths();
  const layout = unetLayoutOf(sdxl, 2);

  it("maps real SDXL's modules (layers_per_block 2) as a hand-checked table says", () => {
    const table: [string, string][] = [
      ["down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2"],
      ["down_blocks.0.resnets.1.time_emb_proj", "input_blocks.2.0.emb_layers.1"],
      ["down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"],
      ["down_blocks.1.resnets.0.conv_shortcut", "input_blocks.4.0.skip_connection"],
      [
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
        "input_blocks.4.1.transformer_blocks.0.attn1.to_q",
      ],
      ["down_blocks.1.attentions.1.proj_in", "input_blocks.5.1.proj_in"],
      ["down_blocks.1.downsamplers.0.conv", "input_blocks.6.0.op"],
      [
        "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2",
        "input_blocks.8.1.transformer_blocks.9.ff.net.2",
      ],
      ["mid_block.resnets.0.conv2", "middle_block.0.out_layers.3"],
      [
        "mid_block.attentions.0.transformer_blocks.3.attn2.to_k",
        "middle_block.1.transformer_blocks.3.attn2.to_k",
      ],
      ["mid_block.resnets.1.conv1", "middle_block.2.in_layers.2"],
      ["up_blocks.0.resnets.0.conv_shortcut", "output_blocks.0.0.skip_connection"],
      [
        "up_blocks.0.attentions.2.transformer_blocks.0.attn1.to_out.0",
        "output_blocks.2.1.transformer_blocks.0.attn1.to_out.0",
      ],
      ["up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"],
      ["up_blocks.1.resnets.0.conv1", "output_blocks.3.0.in_layers.2"],
      ["up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"],
      ["up_blocks.2.resnets.2.conv2", "output_blocks.8.0.out_layers.3"],
      ["conv_in", "input_blocks.0.0"],
      ["time_embedding.linear_2", "time_embed.2"],
      ["add_embedding.linear_1", "label_emb.0.0"],
      ["conv_out", "out.2"],
    ];
    for (const [path, sgm] of table) expect(sgmModulePath(path, layout), path).toBe(sgm);
  });

  it("inverts diffusers' own SGM mapping for every down, mid and up module of SDXL", () => {
    let checked = 0;
    for (const path of sdxl) {
      const sgm = sgmModulePath(path, layout);
      if (sgm === undefined) continue;
      const back = diffusersFromSgm(sgm, 2);
      if (back === undefined) continue; // norms, conv_in, embeddings: diffusers maps none of them
      expect(back, sgm).toBe(path);
      checked++;
    }
    // Every down/mid/up module but the resnets' norms, which diffusers' key conversion does not name.
    expect(checked).toBe(
      sdxl.filter((p) => /^(down|mid|up)_block/.test(p) && !/resnets\.\d\.norm\d$/.test(p)).length,
    );
  });

  for (const layersPerBlock of [1, 2]) {
    it(`agrees at layers_per_block ${layersPerBlock} with the tiny model's SGM names, numbered in construction order`, () => {
      for (const kind of ["sdxl", "sd15"] as const) {
        const modules = tinyAdapterModules(tinyAdapterDims(kind, layersPerBlock)).filter(
          (m) => m.component === "unet",
        );
        const tinyLayout = unetLayoutOf(
          modules.map((m) => m.path),
          layersPerBlock,
        );
        for (const m of modules) {
          expect(sgmModulePath(m.path, tinyLayout), m.path).toBe(m.sgmPath);
          const back = diffusersFromSgm(m.sgmPath as string, layersPerBlock);
          if (back !== undefined) expect(back).toBe(m.path);
        }
      }
    });
  }

  it("resolves kohya-ss SDXL names (dots written as underscores) against the model's modules", () => {
    const index = createModuleIndex(
      "unet",
      new Map<string, ModuleWeight>(sdxl.map((p) => [p, { shape: [1, 1] }])),
      2,
    );
    expect(index.flat("input_blocks_4_1_transformer_blocks_0_attn1_to_q")).toEqual({
      found: "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    });
    expect(index.flat("output_blocks_2_2_conv")).toEqual({ found: "up_blocks.0.upsamplers.0.conv" });
    expect(index.flat("middle_block_1_proj_out")).toEqual({ found: "mid_block.attentions.0.proj_out" });
    // The same module under its diffusers name, as kohya-ss writes SD 1.x files and LCM-LoRA SDXL ones.
    expect(index.flat("down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q")).toEqual({
      found: "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    });
    expect(index.dotted("input_blocks.7.1.proj_in")).toEqual({ found: "down_blocks.2.attentions.0.proj_in" });
    // At layers_per_block 1 the same SGM number is another module.
    const one = createModuleIndex(
      "unet",
      new Map<string, ModuleWeight>(sdxl.map((p) => [p, { shape: [1, 1] }])),
      1,
    );
    expect(one.flat("input_blocks_4_1_transformer_blocks_0_attn1_to_q")).toEqual({ missing: true });
  });

  it("reports a flattened name that two modules share as ambiguous", () => {
    const index = createModuleIndex(
      "text_encoder",
      new Map<string, ModuleWeight>([
        ["a.b_c", { shape: [2, 2] }],
        ["a_b.c", { shape: [2, 2] }],
      ]),
      2,
    );
    expect(index.flat("a_b_c")).toEqual({ ambiguous: ["a.b_c", "a_b.c"] });
    expect(index.dotted("a.b_c")).toEqual({ found: "a.b_c" });
  });
});
