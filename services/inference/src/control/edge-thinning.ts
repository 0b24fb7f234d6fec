import type { Mat } from "@techstark/opencv-js";
import type { MatScope } from "./opencv.js";

// Lvmin Zhang's thinning and pruning patterns from the ControlNet extension (`scripts/lvminthin.py`), for
// hit-or-miss: 1 = edge, -1 = background, 0 = either. Each is used in its four 90° rotations.
const THIN_PATTERNS = [
  [
    [-1, -1, -1],
    [0, 1, 0],
    [1, 1, 1],
  ],
  [
    [0, -1, -1],
    [1, 1, -1],
    [0, 1, 0],
  ],
];
const PRUNE_PATTERNS = [
  [
    [-1, -1, -1],
    [-1, 1, -1],
    [0, 0, -1],
  ],
  [
    [-1, -1, -1],
    [-1, 1, -1],
    [-1, 0, 0],
  ],
];

/** `np.rot90(m, k)`: k quarter turns counter-clockwise. */
function rot90(m: number[][], k: number): number[][] {
  let r = m;
  for (let t = 0; t < k; t++) r = r.map((_, i) => r.map((row) => row[r.length - 1 - i] as number));
  return r;
}

/** Every pattern at rotation 0, then every pattern at rotation 1, …, as the extension lists them. */
function rotations(patterns: number[][][]): number[][][] {
  return [0, 1, 2, 3].flatMap((k) => patterns.map((p) => rot90(p, k)));
}

const THIN_KERNELS = rotations(THIN_PATTERNS).map(compile);
const PRUNE_KERNELS = rotations(PRUNE_PATTERNS).map(compile);

/** A pattern's non-zero cells as row and column offsets from the centre; background (-1) cells first, as
 * they rule most pixels out soonest. */
interface Pattern {
  readonly dy: readonly number[];
  readonly dx: readonly number[];
  readonly edge: readonly boolean[];
}

function compile(k: readonly number[][]): Pattern {
  const cells = k.flatMap((row, r) => row.map((want, c) => ({ dy: r - 1, dx: c - 1, want })));
  const ordered = [...cells.filter((c) => c.want === -1), ...cells.filter((c) => c.want === 1)];
  return {
    dy: ordered.map((c) => c.dy),
    dx: ordered.map((c) => c.dx),
    edge: ordered.map((c) => c.want === 1),
  };
}

/**
 * cv2.MORPH_HITMISS on a binary (0/255) image, then those pixels cleared, pattern after pattern; whether any
 * was. Written out rather than run as OpenCV's two erosions per pattern (5 ms each at 1024x674 in
 * WebAssembly, and hundreds per map): a pixel matches when every 1 of the pattern lies on 255 and every -1
 * on 0; as OpenCV's erosion pads with its maximum, a cell outside the image matches either.
 */
function thinOnce(x: Uint8Array, width: number, height: number, patterns: readonly Pattern[]): boolean {
  let changed = false;
  const hits: number[] = [];
  for (const p of patterns) {
    hits.length = 0;
    const n = p.dy.length;
    // Every pattern wants an edge at its centre: only edge pixels need their neighbours read.
    for (let i = x.indexOf(255); i !== -1; i = x.indexOf(255, i + 1)) {
      const px = i % width;
      const y = (i - px) / width;
      let hit = true;
      for (let j = 0; j < n && hit; j++) {
        const yy = y + (p.dy[j] as number);
        const xx = px + (p.dx[j] as number);
        if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
        hit = (x[yy * width + xx] !== 0) === p.edge[j];
      }
      if (hit) hits.push(i);
    }
    for (const i of hits) x[i] = 0;
    if (hits.length > 0) changed = true;
  }
  return changed;
}

/**
 * The extension's `lvmin_thin` on a binary gray image, in place: thinning to one-pixel lines (at most 32
 * rounds), then optionally one pruning round.
 */
export function lvminThin(x: Uint8Array, width: number, height: number, prune: boolean): void {
  for (let round = 0; round < 32; round++) if (!thinOnce(x, width, height, THIN_KERNELS)) break;
  if (prune) thinOnce(x, width, height, PRUNE_KERNELS);
}

const NMS_LINES = [
  [
    [0, 0, 0],
    [1, 1, 1],
    [0, 0, 0],
  ],
  [
    [0, 1, 0],
    [0, 1, 0],
    [0, 1, 0],
  ],
  [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ],
  [
    [0, 0, 1],
    [0, 1, 0],
    [1, 0, 0],
  ],
];

/**
 * The extension's `nake_nms` on a gray Mat: a pixel keeps its value where it is the largest along at least
 * one of the four 3-pixel lines through it (horizontal, vertical, both diagonals), and becomes 0 elsewhere.
 */
export function nakeNms(scope: MatScope, x: Mat): Mat {
  const { cv } = scope;
  const keep = new Uint8Array(x.rows * x.cols);
  for (const line of NMS_LINES) {
    const dilated = scope.empty();
    const kernel = scope.own(cv.matFromArray(3, 3, cv.CV_8U, line.flat()));
    cv.dilate(x, dilated, kernel);
    const d = dilated.data;
    const v = x.data;
    for (let i = 0; i < keep.length; i++) if (d[i] === v[i]) keep[i] = 1;
  }
  const y = scope.empty();
  x.copyTo(y);
  const out = y.data;
  for (let i = 0; i < keep.length; i++) if (!keep[i]) out[i] = 0;
  return y;
}
