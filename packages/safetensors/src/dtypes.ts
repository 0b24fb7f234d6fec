import { endianness } from "node:os";

/** Bytes per element of every dtype the safetensors format defines with a whole-byte size. */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

/** The dtypes this package reads into float32. */
export type FloatDtype = "F16" | "BF16" | "F32";
/** The dtypes this package writes. */
export type WritableDtype = "F16" | "F32";

export const FLOAT_DTYPES: readonly FloatDtype[] = ["F16", "BF16", "F32"];

export function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && Object.hasOwn(DTYPE_SIZES, value);
}

export function isFloatDtype(dtype: Dtype): dtype is FloatDtype {
  return dtype === "F16" || dtype === "BF16" || dtype === "F32";
}

// Typed-array views use the host's byte order and safetensors is little-endian; every platform Node
// supports for this work is little-endian, so say so once rather than byte-swapping everywhere.
export const HOST_IS_LITTLE_ENDIAN = endianness() === "LE";

let halfTable: Float32Array | undefined;

/** float32 value of every IEEE half bit pattern: one lookup per element beats decoding each one. */
function float16Table(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) table[h] = mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = table;
  return table;
}

/**
 * Little-endian `bytes` of `dtype` as float32. `bytes` must start at an offset that is a multiple of 4
 * (a fresh buffer does); F32 input is viewed, not copied, when it does.
 */
export function toFloat32(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  if (dtype === "F32") {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    return new Float32Array(bytes.slice().buffer);
  }
  const count = bytes.length / 2;
  const halves =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, count)
      : new Uint16Array(bytes.slice().buffer);
  const out = new Float32Array(count);
  if (dtype === "F16") {
    const table = float16Table();
    for (let i = 0; i < count; i++) out[i] = table[halves[i] as number] as number;
    return out;
  }
  // bfloat16 is the upper half of a float32.
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = (halves[i] as number) << 16;
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of one float32, rounded to nearest even (overflow to ±Inf, NaN kept). */
function halfBits(value: number): number {
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float32 values as little-endian bytes of `dtype`. */
export function fromFloat32(dtype: WritableDtype, values: Float32Array): Uint8Array {
  if (dtype === "F32")
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfBits(values[i] as number);
  return new Uint8Array(out.buffer);
}
