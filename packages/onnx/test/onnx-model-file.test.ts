import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema, TensorProto_DataLocation } from "@dmesh/contracts/onnx/onnx_pb.js";
import {
  cpuSessionSettings,
  EXTERNAL_DATA_FILE,
  encodeOnnxModel,
  ModelContractError,
  OnnxSession,
  readOnnxModel,
  tensorProto,
  writeOnnxModel,
} from "@dmesh/onnx";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addModel, externalFloats, tempDir, type VariantName, writeVariants } from "./support/tiny-models.js";

let root: Awaited<ReturnType<typeof tempDir>>;
let dirs: Record<VariantName, string>;

beforeAll(async () => {
  root = await tempDir("file");
  dirs = await writeVariants(root.path);
});
afterAll(() => root?.remove());

const bytesOf = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const COMPONENTS = ["text_encoder", "text_encoder_2", "unet", "vae_decoder", "vae_encoder"];

describe("reading and writing ONNX models", () => {
  it("reads every initializer, inline or external, and writes the other storage byte for byte", async () => {
    for (const component of COMPONENTS) {
      const inlineFile = join(dirs["parameters, inline"], component, "model.onnx");
      const externalFile = join(dirs["parameters, external data"], component, "model.onnx");
      const inline = await readOnnxModel(inlineFile);
      const external = await readOnnxModel(externalFile);
      expect([...external.initializers.keys()]).toEqual([...inline.initializers.keys()]);
      let externalCount = 0;
      for (const [name, info] of inline.initializers) {
        const other = external.initializers.get(name);
        expect(other?.dims).toEqual(info.dims);
        if (other?.location.kind === "file" && other.location.external) externalCount++;
        expect(
          bytesOf(await external.readTensor(name)).equals(bytesOf(await inline.readTensor(name))),
          name,
        ).toBe(true);
      }
      expect(externalCount, component).toBeGreaterThan(0);

      // External → inline gives the inline file; inline → external gives both files of the external variant.
      expect(bytesOf(encodeOnnxModel(await external.toProto()).model).equals(readFileSync(inlineFile))).toBe(
        true,
      );
      const encoded = encodeOnnxModel(await inline.toProto(), {
        externalData: { location: EXTERNAL_DATA_FILE },
      });
      expect(bytesOf(encoded.model).equals(readFileSync(externalFile))).toBe(true);
      const dataFile = join(dirs["parameters, external data"], component, EXTERNAL_DATA_FILE);
      expect(bytesOf(encoded.externalData ?? new Uint8Array(0)).equals(readFileSync(dataFile))).toBe(true);
    }
  });

  it("writes a model with external data that onnxruntime runs, as onnx.save lays it out", async () => {
    const dir = join(root.path, "written");
    const w = Float32Array.from({ length: 300 }, (_, i) => i / 10);
    const small = Float32Array.from([1, 2, 3]);
    const model = addModel(300, [tensorProto("w", "float32", [300], w)]);
    const files = await writeOnnxModel(join(dir, "model.onnx"), model, {
      externalData: { location: "weights.bin" },
    });
    expect(files).toEqual([join(dir, "model.onnx"), join(dir, "weights.bin")]);
    expect(readFileSync(join(dir, "weights.bin")).byteLength).toBe(1200);
    const stored = fromBinary(ModelProtoSchema, readFileSync(join(dir, "model.onnx"))).graph?.initializer[0];
    expect(stored?.externalData.map((e) => [e.key, e.value])).toEqual([
      ["location", "weights.bin"],
      ["offset", "0"],
      ["length", "1200"],
    ]);
    expect([stored?.dataLocation, stored?.rawData.byteLength]).toEqual([
      TensorProto_DataLocation.EXTERNAL,
      0,
    ]);
    // Below onnx's 1024-byte threshold a tensor stays inline.
    const tiny = encodeOnnxModel(addModel(3, [tensorProto("w", "float32", [3], small)]), {
      externalData: { location: "weights.bin" },
    });
    expect(tiny.externalData?.byteLength).toBe(0);

    const session = await OnnxSession.open("written", "add", join(dir, "model.onnx"), cpuSessionSettings(1));
    const out = await session.run({ x: { data: new Float32Array(300).fill(1), dims: [300] } });
    expect(out.y?.data[299]).toBeCloseTo(30.9, 5);
    await session.release();
  });
});

describe("external data that is refused, naming the file and the tensor", () => {
  /** Writes `model.onnx` (y = x + w…) and a 64-byte data file into a fresh directory. */
  async function modelWith(
    name: string,
    tensors: ReturnType<typeof externalFloats>[],
  ): Promise<{ dir: string; file: string }> {
    const dir = join(root.path, "refused", name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "data.bin"), new Uint8Array(64));
    writeFileSync(join(dir, "model.onnx"), toBinary(ModelProtoSchema, addModel(4, tensors)));
    return { dir, file: join(dir, "model.onnx") };
  }

  const refusal = async (file: string) => {
    const error = await readOnnxModel(file, { model: "m" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelContractError);
    return (error as Error).message;
  };

  it("accepts a well-formed one, and reads it lazily", async () => {
    const { file, dir } = await modelWith("good", [
      externalFloats("w", 4, { location: "data.bin", offset: "16", length: "16" }),
    ]);
    writeFileSync(join(dir, "data.bin"), new Uint8Array(new Float32Array([0, 0, 0, 0, 1, 2, 3, 4]).buffer));
    const model = await readOnnxModel(file);
    expect(model.initializer("w").location).toEqual({
      kind: "file",
      external: true,
      file: join(dir, "data.bin"),
      offset: 16,
      length: 16,
    });
    expect(Array.from((await model.readTensor("w")) as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it.each([
    ["outside", { location: "../outside.bin" }, /location "..\/outside.bin" is outside/],
    ["absolute", { location: "/etc/hostname" }, /location "\/etc\/hostname" is absolute/],
    ["missing", { location: "nowhere.bin" }, /file "nowhere.bin" does not exist/],
    [
      "past the end",
      { location: "data.bin", offset: "56" },
      /range 56..72 runs past the end of data.bin \(64 bytes\)/,
    ],
    [
      "length",
      { location: "data.bin", length: "12" },
      /length 12 does not match its dims and dtype \(16 bytes\)/,
    ],
    ["bad offset", { location: "data.bin", offset: "-4" }, /offset "-4" is not a byte count/],
    ["no location", { offset: "0" }, /external data has no location/],
  ])("%s", async (name, entries, problem) => {
    const { file } = await modelWith(name.replace(/ /g, "-"), [externalFloats("w", 4, entries)]);
    const message = await refusal(file);
    expect(message).toContain(`model "m": ${file}: tensor "w": external data`);
    expect(message).toMatch(problem);
  });

  it("a symlink that leads outside the directory", async () => {
    const { file, dir } = await modelWith("symlink", [externalFloats("w", 4, { location: "link.bin" })]);
    writeFileSync(join(root.path, "secret.bin"), new Uint8Array(16));
    symlinkSync(join(root.path, "secret.bin"), join(dir, "link.bin"));
    expect(await refusal(file)).toMatch(/tensor "w": external data location "link.bin" leads outside/);
  });

  it("overlapping ranges", async () => {
    const { file } = await modelWith("overlap", [
      externalFloats("a", 4, { location: "data.bin", offset: "0", length: "16" }),
      externalFloats("b", 4, { location: "data.bin", offset: "8", length: "16" }),
    ]);
    expect(await refusal(file)).toMatch(/tensor "b": external data overlaps tensor "a" in data.bin/);
  });

  it("an unknown dtype", async () => {
    // 17 is FLOAT8E4M3FN: a real type whose bytes this package does not read.
    const { file } = await modelWith("dtype", [externalFloats("w", 4, { location: "data.bin" }, 17)]);
    expect(await refusal(file)).toMatch(
      new RegExp(`${file}: tensor "w": has data type 17, which is not supported`),
    );
  });
});
