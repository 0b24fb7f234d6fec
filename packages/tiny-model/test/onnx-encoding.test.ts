import type { ModelProto } from "@dmesh/contracts/onnx/onnx_pb.js";
import { encodeOnnxModel } from "@dmesh/onnx";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/onnx/graph-builder.js";
import { floats, ioOf, ort } from "./helpers.js";

const encodeModel = (model: ModelProto): Uint8Array => encodeOnnxModel(model).model;

describe("ONNX models built with the generated onnx.proto types", () => {
  it("run in onnxruntime with the declared I/O, attributes and initializers", async () => {
    const g = new GraphBuilder("check");
    const x = g.input("x", "float32", ["batch", 3]);
    const w = g.initializer("layer.weight", Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]); // [out, in]
    const y = g.op("MatMul", [x, g.op("Transpose", [w], { perm: [1, 0] })]);
    const scaled = g.op("Mul", [y, g.float([0.5], [])]);
    const clipped = g.op("Clip", [scaled, g.float([-100], []), g.float([10.5], [])]);
    const soft = g.op("Softmax", [clipped], { axis: -1 });
    g.output(clipped, "y", "float32", ["batch", 2]);
    g.output(soft, "p", "float32", ["batch", 2]);
    const session = await ort.InferenceSession.create(encodeModel(g.toModel("test")));

    expect(ioOf(session.inputMetadata)).toEqual([{ name: "x", type: "float32", dims: ["batch", 3] }]);
    expect(ioOf(session.outputMetadata)).toEqual([
      { name: "y", type: "float32", dims: ["batch", 2] },
      { name: "p", type: "float32", dims: ["batch", 2] },
    ]);
    const out = await session.run({
      x: new ort.Tensor("float32", Float32Array.from([1, 1, 1, 10, 0, 0]), [2, 3]),
    });
    // row 0: [6, 15]·0.5 = [3, 7.5]; row 1: [10, 40]·0.5 = [5, 20] → clipped to 10.5
    expect(Array.from(floats(out.y as ort.Tensor))).toEqual([3, 7.5, 5, 10.5]);
    const p = floats(out.p as ort.Tensor);
    expect((p[0] as number) + (p[1] as number)).toBeCloseTo(1, 6);
  });

  it("encodes scalar inputs, int64 attributes lists and identical bytes for identical graphs", async () => {
    const build = () => {
      const g = new GraphBuilder("scalar");
      const t = g.input("t", "int64", []);
      const v = g.op("Cast", [g.op("Reshape", [t, g.int64([-1])])], { to: 1 });
      g.output(v, "v", "float32", [1]);
      return encodeModel(g.toModel("scalar"));
    };
    const bytes = build();
    expect(Buffer.from(build()).equals(Buffer.from(bytes))).toBe(true);
    const session = await ort.InferenceSession.create(bytes);
    expect(ioOf(session.inputMetadata)).toEqual([{ name: "t", type: "int64", dims: [] }]);
    const out = await session.run({ t: new ort.Tensor("int64", BigInt64Array.from([7n]), []) });
    expect(Array.from(floats(out.v as ort.Tensor))).toEqual([7]);
  });

  it("rejects a value name used twice and data that does not fill its dims", () => {
    const g = new GraphBuilder("dup");
    g.input("x", "float32", [1]);
    expect(() => g.initializer("x", new Float32Array(1), [1])).toThrow(/duplicate value name x/);
    g.initializer("w", new Float32Array(3), [2, 2]);
    expect(() => encodeModel(g.toModel("bad"))).toThrow(
      /tensor w: dims \[2,2\] hold 4 values but data has 3/,
    );
  });
});
