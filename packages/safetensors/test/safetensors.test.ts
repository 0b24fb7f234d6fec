import { mkdtemp, open, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_HEADER_BYTES,
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "../src/index.js";

// Files are built here byte by byte from the format's definition, not with the writer under test.
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), pad = 0): Uint8Array {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const json = new TextEncoder().encode(text + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(...arrays: ArrayBufferView[]): Uint8Array {
  const total = arrays.reduce((n, a) => n + a.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += a.byteLength;
  }
  return out;
}

async function refusal(bytes: Uint8Array, name = "bad.safetensors"): Promise<SafetensorsError> {
  try {
    const file = await decodeSafetensors(name, bytes);
    await file.close();
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError);
    return error as SafetensorsError;
  }
  throw new Error("expected a refusal");
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "dmesh-safetensors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("reading", () => {
  it("reads F32, F16 and BF16 tensors into float32 in PyTorch layout", async () => {
    const f32 = new Float32Array([1.5, -2, 0.25, 1e-3]);
    // F16: 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal); BF16: 1, -3.140625
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0]);
    const bf16 = new Uint16Array([0x3f80, 0xc049]);
    const data = bytesOf(f32, f16, bf16);
    const file = await decodeSafetensors(
      "mixed.safetensors",
      rawFile(
        {
          __metadata__: { format: "pt", ss_network_dim: "4" },
          a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
          h: { dtype: "F16", shape: [3, 2], data_offsets: [16, 28] },
          b: { dtype: "BF16", shape: [2], data_offsets: [28, 32] },
        },
        data,
      ),
    );
    expect(file.metadata).toEqual({ format: "pt", ss_network_dim: "4" });
    expect([...file.tensors.keys()]).toEqual(["a", "h", "b"]);
    const a = await file.readFloat("a");
    expect(a.shape).toEqual([2, 2]);
    expect([...a.data]).toEqual([...f32]);
    expect([...(await file.readFloat("h")).data]).toEqual([1, -2, 0.5, 65504, 2 ** -24, 0]);
    expect([...(await file.readFloat("b")).data]).toEqual([1, -3.140625]);
  });

  it("accepts header padding, an empty file of tensors and zero-sized tensors", async () => {
    const file = await decodeSafetensors(
      "pad.safetensors",
      rawFile({ z: { dtype: "F32", shape: [0, 4], data_offsets: [0, 0] } }, new Uint8Array(0), 5),
    );
    expect((await file.readFloat("z")).data.length).toBe(0);
    const empty = await decodeSafetensors("empty.safetensors", rawFile({}));
    expect(empty.tensors.size).toBe(0);
  });

  it("round-trips what the writer writes, F32 exactly and F16 to the nearest half", async () => {
    const values = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);
    const bytes = encodeSafetensors(
      [
        { name: "w.f32", dtype: "F32", shape: [4, 6], data: values },
        { name: "w.f16", dtype: "F16", shape: [2, 3, 2, 2], data: values },
      ],
      { note: "x" },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const file = await decodeSafetensors("rt.safetensors", bytes);
    expect(file.metadata).toEqual({ note: "x" });
    expect([...(await file.readFloat("w.f32")).data]).toEqual([...values]);
    const half = await file.readFloat("w.f16");
    expect(half.shape).toEqual([2, 3, 2, 2]);
    for (let i = 0; i < values.length; i++) {
      // Half precision keeps 11 significant bits.
      expect(Math.abs((half.data[i] as number) - (values[i] as number))).toBeLessThanOrEqual(2 ** -10 * 4);
    }
  });

  it("reads tensors from disk on demand, after the header, not when the file is opened", async () => {
    const path = join(dir, "lazy.safetensors");
    await writeSafetensors(path, [
      { name: "first", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
      { name: "second", dtype: "F32", shape: [2], data: new Float32Array([3, 4]) },
    ]);
    const file = await openSafetensors(path);
    try {
      // Overwrite the second tensor's bytes after opening: the read must see the new ones.
      const handle = await open(path, "r+");
      await handle.write(new Uint8Array(new Float32Array([7, 8]).buffer), 0, 8, file.dataOffset + 8);
      await handle.close();
      expect([...(await file.readFloat("second")).data]).toEqual([7, 8]);
      expect([...(await file.readFloat("first")).data]).toEqual([1, 2]);
    } finally {
      await file.close();
    }
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

describe("refusals name the file and the key", () => {
  const f32 = (n: number) => new Uint8Array(n * 4);

  it("a file shorter than the length prefix", async () => {
    const e = await refusal(new Uint8Array(5));
    expect(e.message).toBe("bad.safetensors: is 5 bytes, shorter than the 8-byte header length");
  });

  it("a header that runs past the end of the file (truncated)", async () => {
    const whole = rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(1));
    const e = await refusal(whole.slice(0, 20));
    expect(e.message).toMatch(
      /^bad\.safetensors: header of \d+ bytes runs past the end of the file \(20 bytes\)/,
    );
  });

  it("tensor data cut off (truncated), an offset past the end", async () => {
    const whole = rawFile(
      { "lora_unet_x.lora_up.weight": { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
      f32(4),
    );
    const e = await refusal(whole.slice(0, whole.length - 4));
    expect(e.key).toBe("lora_unet_x.lora_up.weight");
    expect(e.message).toBe(
      'bad.safetensors: "lora_unet_x.lora_up.weight": data_offsets [0, 16] run past the end of the data (12 bytes): the file is truncated',
    );
  });

  it("overlapping tensors", async () => {
    const e = await refusal(
      rawFile(
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        f32(3),
      ),
    );
    expect(e.message).toBe('bad.safetensors: "b": bytes [4, 12] overlap tensor "a"');
  });

  it("bytes that belong to no tensor, between tensors or after the last", async () => {
    const gap = await refusal(rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, f32(2)));
    expect(gap.message).toBe('bad.safetensors: "a": 4 bytes before this tensor belong to none');
    const tail = await refusal(rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(2)));
    expect(tail.message).toBe("bad.safetensors: 4 bytes after the last tensor belong to none");
  });

  it("a header larger than the limit, before reading it", async () => {
    const prefix = new Uint8Array(16);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(DEFAULT_MAX_HEADER_BYTES + 1), true);
    const e = await refusal(prefix);
    expect(e.message).toBe(
      `bad.safetensors: header of ${DEFAULT_MAX_HEADER_BYTES + 1} bytes is larger than the limit of ${DEFAULT_MAX_HEADER_BYTES} bytes`,
    );
    const small = rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(1));
    await expect(decodeSafetensors("x.safetensors", small, { maxHeaderBytes: 10 })).rejects.toThrow(
      /limit of 10 bytes/,
    );
  });

  it("an unknown dtype", async () => {
    const e = await refusal(rawFile({ w: { dtype: "F12", shape: [1], data_offsets: [0, 4] } }, f32(1)));
    expect(e.message).toBe('bad.safetensors: "w": unknown dtype "F12"');
  });

  it("a shape that disagrees with the byte length", async () => {
    const e = await refusal(rawFile({ w: { dtype: "F16", shape: [3, 2], data_offsets: [0, 8] } }, f32(2)));
    expect(e.message).toBe('bad.safetensors: "w": shape [3, 2] of F16 needs 12 bytes, data_offsets give 8');
    const huge = await refusal(
      rawFile({ w: { dtype: "F32", shape: [2 ** 26, 2 ** 26, 2 ** 26], data_offsets: [0, 8] } }, f32(2)),
    );
    expect(huge.message).toMatch(/needs more than 9007199254740991 bytes, data_offsets give 8/);
  });

  it("malformed entries", async () => {
    const cases: [unknown, RegExp][] = [
      [
        { w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } },
        /"w": shape is not a list of non-negative integers/,
      ],
      [{ w: { dtype: "F32", shape: [1], data_offsets: [0] } }, /"w": data_offsets is not a pair/],
      [
        { w: { dtype: "F32", shape: [1], data_offsets: [4, 0] } },
        /"w": data_offsets \[4, 0\] end before they begin/,
      ],
      [{ w: [1, 2] }, /"w": entry is not an object/],
      [{ __metadata__: { a: 1 } }, /"__metadata__": value of "a" is not a string/],
    ];
    for (const [header, pattern] of cases)
      expect((await refusal(rawFile(header, f32(1)))).message).toMatch(pattern);
  });

  it("a header that is not a UTF-8 JSON object", async () => {
    expect((await refusal(rawFile("[1, 2]"))).message).toBe(
      'bad.safetensors: header does not start with "{"',
    );
    expect((await refusal(rawFile('{"a": '))).message).toBe("bad.safetensors: header is not valid JSON");
    const latin1 = rawFile('{"a":1}');
    latin1[10] = 0xff;
    expect((await refusal(latin1)).message).toBe("bad.safetensors: header is not valid UTF-8");
  });

  it("a read of a dtype this reader does not convert, or of a missing key", async () => {
    const file = await decodeSafetensors(
      "ints.safetensors",
      rawFile({ step: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    );
    await expect(file.readFloat("step")).rejects.toThrow(
      'ints.safetensors: "step": dtype I64 is not a float type this reader supports (F16, BF16, F32)',
    );
    await expect(file.readFloat("nope")).rejects.toThrow('ints.safetensors: "nope": no such tensor');
  });

  it("a file that does not exist", async () => {
    await expect(openSafetensors(join(dir, "missing.safetensors"))).rejects.toThrow(
      "missing.safetensors: does not exist",
    );
  });
});

describe("pickled checkpoints are refused, never unpickled", () => {
  it("by extension, before the file is opened", async () => {
    for (const name of ["x.ckpt", "x.pt", "x.PTH", "x.bin"]) {
      // The path does not exist: the refusal comes from the name alone.
      await expect(openSafetensors(join(dir, name))).rejects.toThrow(
        /is a pickled PyTorch checkpoint.*never/,
      );
    }
  });

  it("by content when a pickle or a torch.save zip is named .safetensors", async () => {
    // Legacy torch.save: pickle protocol 2 (0x80 0x02) starting with the magic number as LONG1 (0x8a).
    const legacy = Uint8Array.from([
      0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50,
    ]);
    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
    for (const [name, bytes] of [
      ["legacy.safetensors", legacy],
      ["zip.safetensors", zip],
    ] as const) {
      const path = join(dir, name);
      await writeFile(path, bytes);
      await expect(openSafetensors(path)).rejects.toThrow(`${name}: is a pickled PyTorch checkpoint`);
    }
  });
});
