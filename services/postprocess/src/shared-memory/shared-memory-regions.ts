import { constants } from "node:fs";
import { type FileHandle, mkdir, open, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@dmesh/runtime/errors";

/** Bytes in a region as a request names them. */
export interface RegionRef {
  readonly region: string;
  readonly offset: bigint;
  readonly byteSize: bigint;
}

/** A `RegionRef` checked against its file: a plain file in the directory that held the whole slice. */
export interface RegionSlice {
  readonly region: string;
  readonly offset: number;
  readonly byteSize: number;
  /** The request field that named it (`image.shared_memory`, `output_shared_memory`), for errors. */
  readonly field: string;
}

export type RegionAccess = "read" | "write";

/** A file name and nothing else: no separators, no "." or ".." nor hidden files, bounded. */
const REGION_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/**
 * Same-host callers' shared-memory regions, in the manner of Triton's system shared memory: files the
 * callers create and size in one directory (a tmpfs such as /dev/shm/dmesh), read and written here only
 * within the slice a request names. Node has no mmap, so a read is one `read` into a Buffer and a write one
 * `write` at the offset; on tmpfs each is a memory copy. Files are opened without following links and
 * without blocking (a FIFO would otherwise hold a thread), never created, extended or truncated.
 */
export class SharedMemoryRegions {
  private constructor(private readonly dir: string | undefined) {}

  /** Regions in `dir`, made if missing; "" = the feature off (every use fails FAILED_PRECONDITION). */
  static async open(dir: string): Promise<SharedMemoryRegions> {
    if (!dir) return new SharedMemoryRegions(undefined);
    await mkdir(dir, { recursive: true });
    const resolved = await realpath(dir);
    if (!(await stat(resolved)).isDirectory()) throw new Error(`${dir} is not a directory`);
    return new SharedMemoryRegions(resolved);
  }

  /** Checks that `ref` names a slice of a region the service may access, before any work depends on it. */
  async check(ref: RegionRef, field: string, access: RegionAccess): Promise<RegionSlice> {
    const file = await this.openSlice(ref, field, access);
    await file.handle.close();
    return file.slice;
  }

  /** The slice's bytes (one allocation, one read). */
  async read(slice: RegionSlice): Promise<Buffer> {
    const { handle } = await this.openSlice(refOf(slice), slice.field, "read");
    try {
      const bytes = Buffer.allocUnsafe(slice.byteSize);
      for (let at = 0; at < slice.byteSize; ) {
        const { bytesRead } = await handle.read(bytes, at, slice.byteSize - at, slice.offset + at);
        // openSlice saw the file hold the slice; a caller truncating it meanwhile gets this.
        if (bytesRead === 0)
          throw new InvalidArgumentError(
            `${slice.field}.byte_size`,
            `region "${slice.region}" ended after ${at} of the bytes`,
          );
        at += bytesRead;
      }
      return bytes;
    } finally {
      await handle.close();
    }
  }

  /** Writes `bytes` at the slice's offset; the slice's `byteSize` is the room there. Returns what it holds now. */
  async write(slice: RegionSlice, bytes: Uint8Array): Promise<RegionRef> {
    if (bytes.byteLength > slice.byteSize) {
      throw new InvalidArgumentError(
        `${slice.field}.byte_size`,
        `is ${slice.byteSize} bytes; the output is ${bytes.byteLength}`,
      );
    }
    const { handle } = await this.openSlice(refOf(slice), slice.field, "write");
    try {
      for (let at = 0; at < bytes.byteLength; ) {
        const { bytesWritten } = await handle.write(bytes, at, bytes.byteLength - at, slice.offset + at);
        at += bytesWritten;
      }
    } finally {
      await handle.close();
    }
    return { region: slice.region, offset: BigInt(slice.offset), byteSize: BigInt(bytes.byteLength) };
  }

  private async openSlice(
    ref: RegionRef,
    field: string,
    access: RegionAccess,
  ): Promise<{ handle: FileHandle; slice: RegionSlice }> {
    if (!this.dir)
      throw new FailedPreconditionError(
        "shared memory is not enabled on this service (SHARED_MEMORY_DIR)",
        field,
      );
    const { region, offset, byteSize } = ref;
    if (!REGION_NAME.test(region)) {
      throw new InvalidArgumentError(
        `${field}.region`,
        "must be a file name in the shared-memory directory: 1-128 letters, digits, '.', '_' or '-', not starting with '.'",
      );
    }
    if (byteSize < 1n) throw new InvalidArgumentError(`${field}.byte_size`, "is required");
    const handle = await openRegion(join(this.dir, region), `${field}.region`, access);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw notAFile(`${field}.region`);
      const size = BigInt(stats.size);
      if (offset >= size)
        throw new InvalidArgumentError(
          `${field}.offset`,
          `is ${offset}; region "${region}" has ${size} bytes`,
        );
      if (offset + byteSize > size) {
        throw new InvalidArgumentError(
          `${field}.byte_size`,
          `is ${byteSize}: from offset ${offset} it runs past the end of region "${region}" (${size} bytes)`,
        );
      }
      // Both are below the file's size, so exact as numbers.
      return { handle, slice: { region, offset: Number(offset), byteSize: Number(byteSize), field } };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }
}

async function openRegion(path: string, field: string, access: RegionAccess): Promise<FileHandle> {
  const mode = access === "read" ? constants.O_RDONLY : constants.O_WRONLY;
  try {
    return await open(path, mode | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    switch ((error as NodeJS.ErrnoException).code) {
      case "ENOENT":
        throw new NotFoundError(field, "no such region in the shared-memory directory");
      case "ELOOP":
        throw new InvalidArgumentError(field, "is a symbolic link; regions are plain files");
      case "EISDIR":
      case "ENXIO":
        throw notAFile(field);
      case "EACCES":
      case "EPERM":
        throw new FailedPreconditionError(`the service may not ${access} this region`, field);
      default:
        throw error;
    }
  }
}

function notAFile(field: string): InvalidArgumentError {
  return new InvalidArgumentError(field, "is not a plain file");
}

function refOf(slice: RegionSlice): RegionRef {
  return { region: slice.region, offset: BigInt(slice.offset), byteSize: BigInt(slice.byteSize) };
}
