import { FailedPreconditionError } from "@dmesh/runtime/errors";
import type { ResolvedSpec } from "@dmesh/spec";
import type { LoadedModel } from "../models/loaded-model.js";
import type { BufferPool } from "../pipeline/buffer-pool.js";
import { clientDecimal } from "../pipeline/client-decimal.js";
import { decodeControlImage } from "./control-image.js";
import { planControlMap } from "./control-map.js";
import type { ControlMapper } from "./control-mapper.js";
import type { ControlNetRegistry } from "./control-net-registry.js";
import { BatchResiduals, type ControlUnit } from "./control-residuals.js";
import type { LoadedControlNet } from "./loaded-control-net.js";
import { resolvePreprocessor } from "./preprocessors.js";
import type { ResidualLayout } from "./residual-layout.js";

/** What a process needs to run ControlNets: the models on disk and the worker that makes control maps. */
export interface ControlNetResources {
  readonly registry: ControlNetRegistry;
  readonly mapper: ControlMapper;
}

/** One unit as run, for the infotext: the model and hash, and the preprocessor settings it ran with. */
export interface ControlUnitReport {
  readonly module: string;
  readonly model: string;
  readonly hash: string;
  readonly weight: number;
  readonly resizeMode: ResolvedSpec["controlNets"][number]["resizeMode"];
  /** The preprocessor's resolution and thresholds, for one that takes them. */
  readonly processorRes: number | undefined;
  readonly thresholdA: number | undefined;
  readonly thresholdB: number | undefined;
  readonly guidanceStart: number;
  readonly guidanceEnd: number;
  readonly pixelPerfect: boolean;
}

/**
 * A request's ControlNets: each unit's model (held until `release`) and control map at the generation size.
 * A UNet that takes residuals gets them from here at every base step (zeros where no unit acts); the refiner
 * runs without ControlNets.
 */
export class RequestControlNets {
  private constructor(
    private readonly units: readonly ControlUnit[],
    readonly reports: readonly ControlUnitReport[],
    private readonly releases: readonly (() => void)[],
  ) {}

  static readonly none = new RequestControlNets([], [], []);

  /**
   * Checks the request's units against the base model and makes their maps: an unknown model is NOT_FOUND,
   * a UNet without residual inputs or a ControlNet that does not fit it FAILED_PRECONDITION, a bad
   * preprocessor or image INVALID_ARGUMENT, each naming `spec.control_nets[i]…`.
   */
  static async prepare(
    base: LoadedModel,
    spec: ResolvedSpec,
    resources: ControlNetResources | undefined,
    signal: AbortSignal,
  ): Promise<RequestControlNets> {
    if (spec.controlNets.length === 0) return RequestControlNets.none;
    const layout = base.contract.controlResiduals;
    if (!layout) {
      throw new FailedPreconditionError(
        `model "${base.dir.id}" has a unet without ControlNet residual inputs (down_block_<i>_additional_residual, mid_block_additional_residual); ControlNets need a UNet exported with them`,
        "spec.control_nets",
      );
    }
    if (!resources)
      throw new FailedPreconditionError("this process runs no ControlNets", "spec.control_nets");
    const field = (i: number) => `spec.control_nets[${i}]`;
    const preprocessors = spec.controlNets.map((u, i) =>
      resolvePreprocessor(u.preprocessor, `${field(i)}.preprocessor`),
    );
    const releases: (() => void)[] = [];
    try {
      const units: ControlUnit[] = [];
      const reports: ControlUnitReport[] = [];
      for (const [i, u] of spec.controlNets.entries()) {
        const { net, release } = await resources.registry.acquire(u.model, `${field(i)}.model`);
        releases.push(release);
        checkFits(net, base, layout, `${field(i)}.model`);
        const decoded = await decodeControlImage(u.image, `${field(i)}.image`);
        // The mapper takes the pixels it is given: raw pixels are the request's own, which stay with it.
        const image =
          decoded.data === u.image.data ? { ...decoded, data: new Uint8Array(decoded.data) } : decoded;
        const plan = planControlMap(
          image,
          preprocessors[i] as ReturnType<typeof resolvePreprocessor>,
          { width: spec.width, height: spec.height, resizeMode: u.resizeMode },
          { image: `${field(i)}.image`, preprocessor: `${field(i)}.preprocessor` },
        );
        const { map, resolution } = await resources.mapper.map(image, plan, signal);
        units.push({
          net,
          map,
          scale: u.conditioningScale,
          // The window compared as the decimals the client sent (0.6 arrives as 0.6000000238, which would
          // leave out step 3 of 5 where the extension's Python float includes it).
          start: clientDecimal(u.guidanceStart),
          end: clientDecimal(u.guidanceEnd),
        });
        const p = plan.preprocessor;
        const scales = p.name !== "none";
        reports.push({
          module: p.name,
          model: u.model,
          hash: net.hash,
          weight: u.conditioningScale,
          resizeMode: u.resizeMode,
          processorRes: scales ? resolution : undefined,
          thresholdA: p.name === "canny" ? p.thresholdA : undefined,
          thresholdB: p.name === "canny" ? p.thresholdB : undefined,
          guidanceStart: u.guidanceStart,
          guidanceEnd: u.guidanceEnd,
          pixelPerfect: p.pixelPerfect,
        });
      }
      return new RequestControlNets(units, reports, releases);
    } catch (err) {
      for (const release of releases) release();
      throw err;
    }
  }

  /**
   * The residual source of one UNet batch on `model` (a phase's), or undefined when its UNet takes none.
   * `withUnits` is false for the refiner phase, which gets zeros.
   */
  forBatch(
    model: LoadedModel,
    withUnits: boolean,
    rows: number,
    latentHeight: number,
    latentWidth: number,
    pool: BufferPool,
  ): BatchResiduals | undefined {
    const layout = model.contract.controlResiduals;
    if (!layout) return undefined;
    return new BatchResiduals(layout, withUnits ? this.units : [], rows, latentHeight, latentWidth, pool);
  }

  release(): void {
    for (const release of this.releases) release();
  }
}

/** A ControlNet fits a UNet: as many residuals with the same channels, the same text widths and conditioning. */
function checkFits(net: LoadedControlNet, base: LoadedModel, layout: ResidualLayout, field: string): void {
  const c = net.contract;
  const problem = (what: string) =>
    new FailedPreconditionError(
      `ControlNet "${net.name}" does not fit model "${base.dir.id}": ${what}`,
      field,
    );
  if (c.down.length !== layout.down.length) {
    throw problem(
      `it returns ${c.down.length} down-block residuals and the unet takes ${layout.down.length} (a ControlNet of another family or block layout)`,
    );
  }
  const pairs = [...c.down.map((s, i) => [s, layout.down[i]] as const), [c.mid, layout.mid] as const];
  for (const [mine, theirs] of pairs) {
    if (mine.channels !== undefined && theirs && mine.channels !== theirs.channels) {
      throw problem(
        `its "${mine.name}" has ${mine.channels} channels and the unet's "${theirs.name}" ${theirs.channels}`,
      );
    }
  }
  if (c.usesTextEmbeds !== base.contract.usesTextEmbeds) {
    throw problem(
      c.usesTextEmbeds
        ? "it takes SDXL's text_embeds and time_ids and the model is not SDXL"
        : "the model is SDXL and it takes no text_embeds and time_ids",
    );
  }
  const width = base.unet.inputs.get("encoder_hidden_states")?.shape[2];
  if (c.hiddenWidth !== undefined && typeof width === "number" && width > 0 && c.hiddenWidth !== width) {
    throw problem(`its encoder_hidden_states are ${c.hiddenWidth} wide and the unet's ${width}`);
  }
  if (c.timeIdsLength !== undefined && c.timeIdsLength !== base.contract.timeIdsLength) {
    throw problem(`it takes ${c.timeIdsLength} time ids and the unet ${base.contract.timeIdsLength}`);
  }
}
