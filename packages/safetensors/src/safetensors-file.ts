import { type FileHandle, open } from "node:fs/promises";
import { DTYPE_SIZES, type FloatDtype, HOST_IS_LITTLE_ENDIAN, isFloatDtype, toFloat32 } from "./dtypes.js";
import { looksPickled, pickledFileError, refusePickledPath } from "./pickle-guard.js";
import { SafetensorsError } from "./safetensors-error.js";
import {
  type HeaderLimits,
  LENGTH_PREFIX_BYTES,
  parseHeader,
  readHeaderLength,
  type SafetensorsHeader,
  type TensorInfo,
} from "./safetensors-header.js";

/** A float tensor read into memory, in the file's (PyTorch's) layout. */
export interface FloatTensor {
  readonly dtype: FloatDtype;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * An open safetensors file whose header has been read and checked; tensors are read on demand, so a
 * large file is never held whole. Close it when done.
 */
export interface SafetensorsFile extends SafetensorsHeader {
  /** The path as given. */
  readonly path: string;
  /** Size of the file in bytes. */
  readonly fileBytes: number;
  /** The tensor's header entry; throws naming the file and key when there is none. */
  info(key: string): TensorInfo;
  /** A tensor's raw little-endian bytes. */
  readBytes(key: string): Promise<Uint8Array>;
  /** An F16, BF16 or F32 tensor as float32; any other dtype is refused naming the key. */
  readFloat(key: string): Promise<FloatTensor>;
  close(): Promise<void>;
}

export type OpenOptions = HeaderLimits;

type ReadAt = (position: number, length: number) => Promise<Uint8Array>;

/** Opens `path` and reads its header; the file stays open until `close()`. */
export async function openSafetensors(path: string, options: OpenOptions = {}): Promise<SafetensorsFile> {
  refusePickledPath(path);
  if (!HOST_IS_LITTLE_ENDIAN) throw new SafetensorsError(path, "cannot be read on a big-endian host");
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new SafetensorsError(
      path,
      code === "ENOENT" ? "does not exist" : `cannot be opened (${code})`,
      undefined,
      {
        cause,
      },
    );
  }
  try {
    const fileBytes = (await handle.stat()).size;
    const readAt: ReadAt = async (position, length) => {
      const buffer = new Uint8Array(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      if (bytesRead !== length) throw new SafetensorsError(path, "became shorter while it was being read");
      return buffer;
    };
    const header = await readHeader(path, readAt, fileBytes, options);
    return createFile(path, fileBytes, header, readAt, () => handle.close());
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Reads safetensors bytes already in memory (tests, small files); `name` stands for the file. */
export async function decodeSafetensors(
  name: string,
  bytes: Uint8Array,
  options: OpenOptions = {},
): Promise<SafetensorsFile> {
  const readAt: ReadAt = async (position, length) => bytes.slice(position, position + length);
  const header = await readHeader(name, readAt, bytes.length, options);
  return createFile(name, bytes.length, header, readAt, async () => {});
}

async function readHeader(
  file: string,
  readAt: ReadAt,
  fileBytes: number,
  options: OpenOptions,
): Promise<SafetensorsHeader> {
  const prefix = await readAt(0, Math.min(LENGTH_PREFIX_BYTES, fileBytes));
  try {
    const length = readHeaderLength(file, prefix, fileBytes, options);
    const json = await readAt(LENGTH_PREFIX_BYTES, length);
    return parseHeader(file, json, fileBytes - LENGTH_PREFIX_BYTES - length);
  } catch (error) {
    if (error instanceof SafetensorsError && looksPickled(prefix)) throw pickledFileError(file, error);
    throw error;
  }
}

function createFile(
  path: string,
  fileBytes: number,
  header: SafetensorsHeader,
  readAt: ReadAt,
  close: () => Promise<void>,
): SafetensorsFile {
  const info = (key: string): TensorInfo => {
    const found = header.tensors.get(key);
    if (found === undefined) throw new SafetensorsError(path, "no such tensor", key);
    return found;
  };
  const readBytes = (key: string): Promise<Uint8Array> => {
    const { begin, end } = info(key);
    return readAt(header.dataOffset + begin, end - begin);
  };
  return {
    ...header,
    path,
    fileBytes,
    info,
    readBytes,
    async readFloat(key) {
      const { dtype, shape } = info(key);
      if (!isFloatDtype(dtype)) {
        throw new SafetensorsError(
          path,
          `dtype ${dtype} is not a float type this reader supports (F16, BF16, F32)`,
          key,
        );
      }
      return { dtype, shape, data: toFloat32(dtype, await readBytes(key)) };
    },
    close,
  };
}

/** Elements in a tensor of `shape`. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes a tensor's data takes. */
export function tensorBytes(info: TensorInfo): number {
  return elementCount(info.shape) * DTYPE_SIZES[info.dtype];
}
