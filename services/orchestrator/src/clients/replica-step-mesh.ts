import type { DescService } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import type { GenerationSpec, SchedulerSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { Image } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { ConditioningService } from "@dmesh/contracts/dmesh/conditioning/v1/conditioning_pb.js";
import type { InferenceService } from "@dmesh/contracts/dmesh/inference/v1/inference_pb.js";
import { type Session, SessionEventKind } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { REQUEST_ID_HEADER } from "@dmesh/runtime";
import type { Logger } from "@dmesh/runtime/logger";
import { estimateActivationBytes } from "@dmesh/spec";
import { replicaFailovers, replicaRetries } from "../orchestrator-metrics.js";
import type { RunControl, RunnerDeps } from "../sessions/session-runner.js";
import { type GenerateResult, StepInterrupted, type StepMesh } from "../sessions/steps/step-context.js";
import { FencedError } from "../store/postgres/pg-session-store.js";
import type { CallNeed, Replica, ReplicaPool } from "./replica-pool.js";
import { describeFailure, type RetryPolicy, waitBeforeRetry } from "./retry-policy.js";
import { StreamWatchdog } from "./stream-watchdog.js";

/** Where the session is in its workflow, for progress. */
export interface StepPosition {
  readonly index: number;
  readonly total: number;
}

/**
 * The mesh as the steps see it, over the replica pools: every call goes through the retry policy (another
 * healthy replica at once, else a backoff), generation streams through the idle watchdog, and a cancel or
 * pause becomes StepInterrupted. `workers` collects who ran what, for the step's timing.
 */
export class ReplicaStepMesh implements StepMesh {
  /** Denoising steps whose UNet run also carried other sessions' images. */
  sharedUnetSteps = 0;
  readonly workers = new Set<string>();

  constructor(
    private readonly session: Session,
    private readonly control: RunControl,
    private readonly deps: RunnerDeps,
    private readonly policy: RetryPolicy,
    private readonly position: StepPosition,
    private readonly log: Logger,
  ) {}

  async generate(spec: GenerationSpec): Promise<GenerateResult> {
    const need: CallNeed = {
      requestId: this.session.requestId,
      bytesPerImage: estimateActivationBytes(spec.size?.width ?? 0, spec.size?.height ?? 0),
    };
    const result = await this.onReplica(
      this.deps.inference,
      "inference",
      (replica) => this.generateOn(replica, spec),
      spec.models?.base ?? "",
      need,
    );
    if (result === "paused") throw new StepInterrupted("paused");
    return result;
  }

  async upscale(image: Image, upscale: Parameters<StepMesh["upscale"]>[1]): Promise<Image> {
    const res = await this.onReplica(this.deps.postprocess, "postprocess upscale", (pp) =>
      pp.client.upscale({ image, upscale }, this.callOptions()),
    );
    return this.imageOf(res.image, "upscale");
  }

  async enhance(image: Image, ops: Parameters<StepMesh["enhance"]>[1]): Promise<Image> {
    const res = await this.onReplica(this.deps.postprocess, "postprocess enhance", (pp) =>
      pp.client.enhance({ image, ops }, this.callOptions()),
    );
    return this.imageOf(res.image, "enhance");
  }

  async checkSafety(image: Image, policy: Parameters<StepMesh["checkSafety"]>[1]) {
    const res = await this.onReplica(this.deps.postprocess, "postprocess safety", (pp) =>
      pp.client.checkSafety({ image, policy, tenant: this.session.tenant }, this.callOptions()),
    );
    if (!res.result) throw new Error("postprocess answered CheckSafety without a result");
    return { result: res.result, ...(res.image ? { image: res.image } : {}) };
  }

  async preprocessControl(image: Image, name: string, resolution: number, width: number, height: number) {
    const res = await this.onReplica(this.deps.inference, "control preprocessing", (replica) =>
      createClient(ConditioningService, replica.transport).preprocessControl(
        { image, preprocessor: { name, resolution }, width, height },
        this.callOptions(),
      ),
    );
    return this.imageOf(res.controlMap, "control preprocessing");
  }

  async process(request: Parameters<StepMesh["process"]>[0]): Promise<Image> {
    const res = await this.onReplica(this.deps.postprocess, "postprocess encode", (pp) =>
      pp.client.process(request, this.callOptions()),
    );
    return this.imageOf(res.image, "encode");
  }

  async encode(request: Parameters<StepMesh["encode"]>[0]): Promise<Image> {
    const res = await this.onReplica(this.deps.postprocess, "postprocess encode", (pp) =>
      pp.client.encode(request, this.callOptions()),
    );
    return this.imageOf(res.image, "encode");
  }

  private imageOf(image: Image | undefined, what: string): Image {
    if (!image) throw new Error(`${what} answered without an image`);
    return image;
  }

  private callOptions(signal: AbortSignal = this.control.abort.signal) {
    return {
      signal,
      timeoutMs: this.deps.callTimeoutMs,
      headers: { [REQUEST_ID_HEADER]: this.session.requestId || this.session.id },
    };
  }

  /**
   * Runs `call` on a replica of `pool`. A transient failure is retried: at once on another healthy replica,
   * else after the policy's backoff (a restarting replica gets time to come back), up to its attempts; then
   * the session fails saying where, how and how often. A cancel throws StepInterrupted("cancelled").
   */
  private async onReplica<S extends DescService, T>(
    pool: ReplicaPool<S>,
    what: string,
    call: (replica: Replica<S>) => Promise<T>,
    warmModel = "",
    need: CallNeed = {},
  ): Promise<T> {
    const { control, policy } = this;
    const tried = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 && !pool.hasHealthy(tried)) {
        try {
          await waitBeforeRetry(policy, attempt, control.abort.signal);
        } catch (err) {
          if (control.cancelRequested) throw new StepInterrupted("cancelled");
          throw err;
        }
      }
      let replica: Replica<S> | undefined;
      try {
        replica = pool.pick(tried, warmModel, need);
        tried.add(replica.address);
        replica.inFlight++;
        const value = await call(replica);
        this.workers.add(replica.address);
        return value;
      } catch (err) {
        if (control.cancelRequested) throw new StepInterrupted("cancelled");
        // Another orchestrator replica owns the session now: nothing to retry here.
        if (control.abort.signal.aborted || err instanceof FencedError) throw err;
        const failure = describeFailure(err);
        const where = replica ? ` on ${replica.address}` : "";
        if (!policy.retryable.has(failure.code) || attempt >= policy.maxAttempts) {
          throw new Error(
            `${what}${where} failed (${Code[failure.code]}: ${failure.message}); gave up after ${attempt} attempt(s)`,
            { cause: err },
          );
        }
        if (replica && failure.code !== Code.ResourceExhausted)
          pool.markDown(replica.address, failure.message);
        replicaRetries.inc({ domain: pool.domain });
        // The next attempt goes at once to a healthy replica not tried yet, where there is one.
        if (pool.hasHealthy(tried)) replicaFailovers.inc({ domain: pool.domain });
        this.log.warn(
          { replica: replica?.address, attempt, code: Code[failure.code], err: failure.message },
          `${what} failed; retrying`,
        );
      } finally {
        if (replica) replica.inFlight--;
      }
    }
  }

  /** One generate attempt on `replica`, resuming from the newest stored checkpoint when there is one. */
  private async generateOn(
    replica: Replica<typeof InferenceService>,
    spec: GenerationSpec,
  ): Promise<GenerateResult | "paused"> {
    const { session, control, deps, position } = this;
    control.replica = replica.address;
    session.worker = replica.address;
    session.attempts++;
    deps.commit(session, SessionEventKind.STATE, { persist: "cached" });
    const watchdog = new StreamWatchdog(deps.streamIdleTimeoutMs, replica.address);
    try {
      const images: Image[] = [];
      const seeds: bigint[] = [];
      let model = "";
      let infotext: readonly { key: string; value: string }[] = [];
      let scheduler: SchedulerSpec | undefined;
      const resumeFrom = await deps.store.checkpoint(session.id);
      const stream = replica.client.generate(
        {
          generationId: session.id,
          spec,
          resumeFrom,
          checkpointIntervalSteps: deps.checkpointIntervalSteps,
        },
        {
          ...this.callOptions(AbortSignal.any([control.abort.signal, watchdog.signal])),
          timeoutMs: undefined,
        },
      );
      // A pause asked for before the stream existed reaches the replica now.
      if (control.pauseRequested)
        void replica.client.pauseGeneration({ generationId: session.id }, this.callOptions()).catch(() => {});
      for await (const res of stream) {
        watchdog.pet();
        const event = res.event;
        switch (event.case) {
          case "progress": {
            const p = event.value;
            session.denoiseStep = p.step;
            session.denoiseTotal = p.totalSteps;
            session.etaSeconds = p.etaSeconds;
            session.progress =
              (position.index + (p.totalSteps > 0 ? p.step / p.totalSteps : 0)) / position.total;
            deps.commit(session, SessionEventKind.PROGRESS, {
              persist: "none",
              ...(p.preview ? { preview: p.preview } : {}),
            });
            break;
          }
          case "checkpoint":
            session.denoiseStep = event.value.step;
            await deps.store.saveWithCheckpoint(session, event.value);
            break;
          case "image":
            if (event.value.image) images.push(event.value.image);
            seeds.push(event.value.seed);
            break;
          case "done":
            if (event.value.model) model = event.value.model;
            infotext = event.value.infotext;
            if (event.value.scheduler) scheduler = event.value.scheduler;
            this.sharedUnetSteps += event.value.sharedSteps;
            if (event.value.paused) return "paused";
            break;
        }
      }
      await deps.store.dropCheckpoint(session.id);
      return { images, seeds, model, infotext, ...(scheduler ? { scheduler } : {}) };
    } finally {
      watchdog.stop();
      control.replica = undefined;
    }
  }
}
