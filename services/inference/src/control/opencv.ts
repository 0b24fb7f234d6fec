import { createRequire } from "node:module";
import type { CV, Mat } from "@techstark/opencv-js";

export type OpenCv = CV;

let loading: Promise<{ cv: OpenCv }> | undefined;

/**
 * OpenCV's WebAssembly build, compiled once per thread on first use (about 1 s and 100 MB of memory), so a
 * process that never preprocesses a control image never pays for it. It resolves to a wrapper because the
 * Emscripten module is itself a thenable that would never settle a promise it resolved.
 */
export function loadOpenCv(): Promise<{ cv: OpenCv }> {
  loading ??= new Promise((resolve) => {
    const cv = createRequire(import.meta.url)("@techstark/opencv-js") as OpenCv & {
      onRuntimeInitialized?: () => void;
    };
    if (typeof cv.Mat === "function") resolve({ cv });
    else cv.onRuntimeInitialized = () => resolve({ cv });
  });
  return loading;
}

/** Mats live in the WebAssembly heap, outside the garbage collector: each one made through a scope is freed with it. */
export class MatScope {
  private readonly mats: Mat[] = [];

  constructor(readonly cv: OpenCv) {}

  /** Takes ownership of a Mat made elsewhere (a roi, a clone). */
  own(mat: Mat): Mat {
    this.mats.push(mat);
    return mat;
  }

  empty(): Mat {
    return this.own(new this.cv.Mat());
  }

  /** A Mat holding a copy of interleaved 8-bit pixels. */
  fromPixels(data: Uint8Array, width: number, height: number, channels: 1 | 3): Mat {
    const mat = this.own(new this.cv.Mat(height, width, channels === 3 ? this.cv.CV_8UC3 : this.cv.CV_8UC1));
    mat.data.set(data);
    return mat;
  }

  /** A small int32 kernel (structuring element) from rows of values. */
  kernel(rows: readonly (readonly number[])[]): Mat {
    return this.own(this.cv.matFromArray(rows.length, rows[0]?.length ?? 0, this.cv.CV_32S, rows.flat()));
  }

  delete(): void {
    for (const mat of this.mats.splice(0)) mat.delete();
  }
}

/** A copy of a continuous 8-bit Mat's pixels out of the WebAssembly heap. */
export function pixelsOf(mat: Mat): Uint8Array {
  return Uint8Array.from(mat.data);
}
