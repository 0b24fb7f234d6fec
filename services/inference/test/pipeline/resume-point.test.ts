import { describe, expect, it } from "vitest";
import { planBatches, type ResumePoint } from "../../src/pipeline/resume-point.js";

const point = (imageIndex: number, images: number) => ({ imageIndex, images }) as ResumePoint;

describe("UNet batches of a request", () => {
  it("fills batches of up to MAX_UNET_BATCH images in order", () => {
    expect(planBatches(5, 2, undefined)).toEqual([
      { first: 0, size: 2, resume: false },
      { first: 2, size: 2, resume: false },
      { first: 4, size: 1, resume: false },
    ]);
    expect(planBatches(3, 8, undefined)).toEqual([{ first: 0, size: 3, resume: false }]);
  });

  it("on resume keeps the checkpoint's batch as it was paused, whatever this process batches", () => {
    expect(planBatches(6, 2, point(2, 3))).toEqual([
      { first: 0, size: 2, resume: false },
      { first: 2, size: 3, resume: true },
      { first: 5, size: 1, resume: false },
    ]);
    expect(planBatches(2, 4, point(0, 1))).toEqual([
      { first: 0, size: 1, resume: true },
      { first: 1, size: 1, resume: false },
    ]);
  });
});
