import { create, type DescField, type DescMessage, ScalarType, toBinary } from "@bufbuild/protobuf";

/** How a message's fields are filled: every value at an end of its range, or strings and bytes very long. */
export type Extreme = "max" | "min" | "long";

const LONG_CHARS = 200_000;
// Nested messages beyond this depth stay unset: specs nest a few levels, and a deeper fill only grows the size.
const MAX_DEPTH = 4;
const LIST_ITEMS = 2;

/**
 * A well-formed message of `schema` with every field set (one member of each oneof) to an extreme value:
 * numbers at their type's limits (floats infinite or NaN, enums outside their values), strings and bytes long
 * or empty, lists and maps filled.
 */
export function extremeMessage(schema: DescMessage, extreme: Extreme): Uint8Array {
  return toBinary(schema, create(schema, fill(schema, extreme, 0) as never));
}

function fill(schema: DescMessage, extreme: Extreme, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      const field = member.fields[0];
      const value = field && single(field, extreme, depth);
      if (field && value !== undefined) out[member.localName] = { case: field.localName, value };
      continue;
    }
    const value = fieldValue(member, extreme, depth);
    if (value !== undefined) out[member.localName] = value;
  }
  return out;
}

function fieldValue(field: DescField, extreme: Extreme, depth: number): unknown {
  switch (field.fieldKind) {
    case "list": {
      const item =
        field.listKind === "scalar"
          ? scalar(field.scalar, extreme)
          : field.listKind === "enum"
            ? enumValue(extreme)
            : depth < MAX_DEPTH
              ? fill(field.message, extreme, depth + 1)
              : undefined;
      return item === undefined ? undefined : Array.from({ length: LIST_ITEMS }, () => item);
    }
    case "map": {
      const key = String(scalar(field.mapKey, extreme));
      const value =
        field.mapKind === "scalar"
          ? scalar(field.scalar, extreme)
          : field.mapKind === "enum"
            ? enumValue(extreme)
            : depth < MAX_DEPTH
              ? fill(field.message, extreme, depth + 1)
              : undefined;
      return value === undefined ? undefined : { [key]: value };
    }
    default:
      return single(field, extreme, depth);
  }
}

function single(field: DescField, extreme: Extreme, depth: number): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar, extreme);
    case "enum":
      return enumValue(extreme);
    case "message":
      return depth < MAX_DEPTH ? fill(field.message, extreme, depth + 1) : undefined;
    default:
      return undefined;
  }
}

function enumValue(extreme: Extreme): number {
  return extreme === "min" ? -1 : 2147483647;
}

function scalar(type: ScalarType, extreme: Extreme): unknown {
  const max = extreme !== "min";
  switch (type) {
    case ScalarType.STRING:
      return extreme === "long" ? "x".repeat(LONG_CHARS) : max ? "é𝄞\u0000%".repeat(40) : "";
    case ScalarType.BYTES:
      return extreme === "long" ? new Uint8Array(64 * 1024).fill(0xff) : new Uint8Array(max ? 16 : 0);
    case ScalarType.BOOL:
      return max;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return max ? Number.POSITIVE_INFINITY : Number.NaN;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return max ? 2147483647 : -2147483648;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return max ? 4294967295 : 0;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return max ? 2n ** 63n - 1n : -(2n ** 63n);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return max ? 2n ** 64n - 1n : 0n;
  }
}

/** Bytes from a small seeded generator (xorshift32): the same "garbage" every run. */
export function garbage(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
