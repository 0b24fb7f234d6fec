/**
 * Float32 buffers reused across requests, by length. A request's long-lived buffers (its UNet batch's
 * inputs) outlive several young-generation collections, so as garbage they pile up in the old generation
 * until a full collection and raise the process's memory high-water mark; reused, they are not garbage.
 */
export class BufferPool {
  private readonly idle = new Map<number, Float32Array[]>();
  private held = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** A buffer of `length` floats, with whatever a previous user left in it. */
  take(length: number): Float32Array {
    const buffer = this.idle.get(length)?.pop();
    if (!buffer) return new Float32Array(length);
    this.held -= buffer.byteLength;
    return buffer;
  }

  give(buffers: Iterable<Float32Array>): void {
    for (const buffer of buffers) {
      if (this.held + buffer.byteLength > this.maxBytes) continue;
      const list = this.idle.get(buffer.length) ?? [];
      if (list.includes(buffer)) continue;
      list.push(buffer);
      this.idle.set(buffer.length, list);
      this.held += buffer.byteLength;
    }
  }
}
