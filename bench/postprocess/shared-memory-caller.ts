import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A region as a request names it (the shape of dmesh.common.v1.SharedMemoryRef). */
export interface RegionRef {
  readonly region: string;
  readonly offset: bigint;
  readonly byteSize: bigint;
}

/** One call's regions: the input it reads and the room it writes its output into. */
export interface RegionSlot {
  readonly input: RegionRef;
  readonly output: RegionRef;
}

interface OpenSlot extends RegionSlot {
  readonly inputFile: FileHandle;
  readonly outputFile: FileHandle;
  /** Where the output is read back to, as a caller mapping the region would have it without a copy. */
  readonly outputBytes: Buffer;
}

/**
 * The caller's side of the postprocess service's shared memory, as a co-located caller would hold it: a
 * directory of region files (on /dev/shm where there is one), an input and an output region per call in
 * flight, kept open. Each call writes its input into its region and reads its output back into the slot's
 * Buffer, so those copies count on the caller's side as a message's encoding and decoding do. (Node cannot
 * map the file; a caller that can, in C++ or Python, would copy neither.)
 */
export class SharedMemoryCaller {
  private readonly free: OpenSlot[];

  private constructor(
    readonly dir: string,
    slots: OpenSlot[],
  ) {
    this.free = slots;
  }

  static async create(slots: number, inputBytes: number, outputBytes: number): Promise<SharedMemoryCaller> {
    const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "dmesh-bench-shm-"));
    const region = async (name: string, bytes: number) => {
      const file = await open(join(dir, name), "w+");
      await file.truncate(bytes);
      return file;
    };
    const opened: OpenSlot[] = [];
    for (let i = 0; i < slots; i++) {
      opened.push({
        input: { region: `in-${i}`, offset: 0n, byteSize: BigInt(inputBytes) },
        output: { region: `out-${i}`, offset: 0n, byteSize: BigInt(outputBytes) },
        inputFile: await region(`in-${i}`, inputBytes),
        outputFile: await region(`out-${i}`, outputBytes),
        outputBytes: Buffer.alloc(outputBytes),
      });
    }
    return new SharedMemoryCaller(dir, opened);
  }

  /**
   * Writes `input` into a free slot's input region, makes `request` on that slot and reads back the output
   * region where the response's image says its bytes are. The bytes returned are the slot's: valid until
   * its next call.
   */
  async call(
    input: Uint8Array,
    request: (slot: RegionSlot) => Promise<RegionRef | undefined>,
  ): Promise<Buffer> {
    const slot = this.free.pop();
    if (!slot) throw new Error("more calls in flight than region slots");
    try {
      await slot.inputFile.write(input, 0, input.byteLength, 0);
      const ref = await request(slot);
      if (ref?.region !== slot.output.region) throw new Error(`the output is not in ${slot.output.region}`);
      const bytes = slot.outputBytes.subarray(0, Number(ref.byteSize));
      const { bytesRead } = await slot.outputFile.read(bytes, 0, bytes.byteLength, Number(ref.offset));
      if (bytesRead !== bytes.byteLength) throw new Error(`short read from ${ref.region}`);
      return bytes;
    } finally {
      this.free.push(slot);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.free.flatMap((slot) => [slot.inputFile.close(), slot.outputFile.close()]));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
