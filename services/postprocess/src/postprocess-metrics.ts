import { counter, gauge } from "@dmesh/runtime";
import type { PixelBudget } from "./limits/pixel-budget.js";

/** The postprocess service's metrics (`dmesh_postprocess_` prefix, base units, labels from fixed sets). */

export type ImageOperation = "safety" | "upscale" | "enhance" | "encode";

export const images = counter({
  name: "dmesh_postprocess_images_total",
  help: "Images an operation was applied to, by operation: safety, upscale, enhance, encode.",
  labelNames: ["operation"],
});

export function countImage(operation: ImageOperation): void {
  images.inc({ operation });
}

let budget: PixelBudget | undefined;

gauge({
  name: "dmesh_postprocess_pixel_budget_used_pixels",
  help: "Pixels that requests in progress hold of the pixel budget (PIXEL_BUDGET).",
  collect() {
    this.set(budget?.used ?? 0);
  },
});

gauge({
  name: "dmesh_postprocess_pixel_budget_capacity_pixels",
  help: "The pixel budget's size (PIXEL_BUDGET).",
  collect() {
    this.set(budget?.capacity ?? 0);
  },
});

gauge({
  name: "dmesh_postprocess_pixel_budget_waiting",
  help: "Requests waiting for their share of the pixel budget.",
  collect() {
    this.set(budget?.waiting ?? 0);
  },
});

/** Where the budget gauges read at each scrape. */
export function gaugePixelBudget(of: PixelBudget): void {
  budget = of;
}
