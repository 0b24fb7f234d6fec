import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ControlNetUnitSchema } from "@dmesh/contracts/dmesh/common/v1/control_pb.js";
import { type GenerationSpec, GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { ImageInputSchema } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { Workflow } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { type CallError, callError, describe, isCancel } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { AppContext } from "../app-context.js";
import { imageUrl } from "../images/image-url.js";
import { Alert } from "../ui/alert.js";
import { ArtifactView } from "../ui/artifact-view.js";
import { controlProps, Field } from "../ui/field.js";
import { isFinished, millis, seconds, shortId, stateName } from "../ui/format.js";
import { Page } from "../ui/page.js";
import { useAdapterListing } from "./adapter-listing.js";
import { AdapterPickers } from "./adapter-pickers.js";
import { ControlNetUnits, type UnitError } from "./control-net-units.js";
import { controlInputFor, controlNetsOf } from "./control-units.js";
import type { GenerateDraft, ImageChoice } from "./draft.js";
import { ImageInputs } from "./image-inputs.js";
import { type SpecErrors, SpecFields } from "./spec-fields.js";
import { inputFor, SPEC_FIELDS, type SpecValues, specOf } from "./spec-form.js";

/** How long one generation's stream may stay open: far beyond a 500-step 4096² run on a CPU. */
const RUN_TIMEOUT_MS = 2 * 60 * 60 * 1000;

interface Run {
  readonly session: Session | undefined;
  readonly previewUrl: string | undefined;
  readonly error: CallError | undefined;
  readonly running: boolean;
}

const IDLE: Run = { session: undefined, previewUrl: undefined, error: undefined, running: false };

/**
 * Generate: the spec's inputs and the workflow's images, one ExecuteWorkflow stream while it runs
 * (progress, ETA, previews), then the images with their actions.
 */
export function GeneratePage(props: {
  draft: GenerateDraft;
  onDraft: (update: (d: GenerateDraft) => GenerateDraft) => void;
  workflows: readonly Workflow[];
  workflowsError: string | undefined;
  models: readonly string[];
}) {
  const { draft, onDraft } = props;
  const { authEpoch } = useContext(AppContext);
  const listing = useAdapterListing(authEpoch);
  const [run, setRun] = useState<Run>(IDLE);
  const [formError, setFormError] = useState<CallError>();
  const controller = useRef<AbortController | undefined>(undefined);
  const results = useRef<HTMLDivElement>(null);
  const workflow = props.workflows.find((w) => w.id === draft.workflowId);
  const inputs = workflow?.inputs ?? [];
  const takesImage = inputs.some((i) => i.name === "image");

  // Signing in again starts from a clean slate.
  useEffect(() => setFormError(undefined), [authEpoch]);

  const field = formError?.field;
  const specInput = inputFor(field, SPEC_FIELDS);
  const imageInput = imageInputFor(field);
  const errors: SpecErrors = specInput ? { [specInput]: formError?.message } : {};
  const imageErrors: Record<string, string | undefined> = imageInput
    ? { [imageInput]: formError?.message }
    : {};
  // Editing what an error is about takes the error away.
  const setValues = (patch: Partial<SpecValues>) => {
    if (specInput && specInput in patch) setFormError(undefined);
    onDraft((d) => ({ ...d, values: { ...d.values, ...patch } }));
  };
  const setImage = (name: string, choice: ImageChoice | undefined) => {
    if (imageInput === name) setFormError(undefined);
    onDraft((d) => {
      const images = { ...d.images };
      if (choice) images[name] = choice;
      else delete images[name];
      return { ...d, images };
    });
  };
  const controlAt = field?.startsWith("spec.control_nets") ? controlInputFor(field) : undefined;
  const controlErrors: Record<number, UnitError> =
    controlAt && formError
      ? { [controlAt.index]: { input: controlAt.input, message: formError.message } }
      : {};
  const workflowError = field === "workflow_id" ? formError?.message : undefined;
  const unplaced =
    formError && !specInput && !imageInput && !workflowError && !controlAt ? formError : undefined;

  const generate = async () => {
    controller.current?.abort();
    setFormError(undefined);
    let spec: ReturnType<typeof specOf>;
    try {
      const controlNets = controlNetsOf(draft.controls).map((u) => create(ControlNetUnitSchema, u));
      spec = create(GenerationSpecSchema, specOf(draft.values, takesImage));
      spec.controlNets = controlNets;
    } catch (err) {
      setFormError(callError(err));
      return;
    }
    const images: Record<string, MessageInitShape<typeof ImageInputSchema>> = {};
    for (const input of inputs) {
      const chosen = draft.images[input.name];
      if (chosen) images[input.name] = chosen.input;
    }
    const abort = new AbortController();
    controller.current = abort;
    setRun({ ...IDLE, running: true });
    // On a phone the results are below the form: bring the progress into sight.
    results.current?.scrollIntoView({ behavior: "smooth", block: "nearest" });
    let previewUrl: string | undefined;
    let sessionId = "";
    try {
      const stream = api.processing.executeWorkflow(
        { workflowId: draft.workflowId, spec, images },
        { signal: abort.signal, timeoutMs: RUN_TIMEOUT_MS },
      );
      for await (const { event } of stream) {
        if (!event?.session) continue;
        if (event.preview) {
          const url = imageUrl(event.preview);
          if (url) {
            if (previewUrl?.startsWith("blob:")) URL.revokeObjectURL(previewUrl);
            previewUrl = url;
          }
        }
        const session = event.session;
        sessionId = session.id;
        setRun({ session, previewUrl, error: undefined, running: true });
      }
      setRun((r) => ({ ...r, running: false }));
    } catch (err) {
      if (abort.signal.aborted || isCancel(err)) {
        setRun((r) => ({ ...r, running: false }));
        // Leaving the stream cancels the session on the server: show where it ended.
        if (sessionId)
          void settled(sessionId).then((session) => session && setRun((r) => ({ ...r, session })));
        return;
      }
      // An error about a request field is shown at that field; any other where the run is shown.
      const e = callError(err);
      if (e.field) setFormError(e);
      setRun((r) => ({ ...r, error: e.field ? undefined : e, running: false }));
    } finally {
      if (controller.current === abort) controller.current = undefined;
    }
  };

  return (
    <Page title="Generate" class="generate">
      <div class="split">
        <form
          class="panel"
          noValidate
          onSubmit={(ev) => {
            ev.preventDefault();
            void generate();
          }}
        >
          <Field id="gen-workflow" label="Workflow" error={workflowError ?? props.workflowsError}>
            <select
              {...controlProps("gen-workflow", workflowError ?? props.workflowsError)}
              value={draft.workflowId}
              onChange={(ev) => onDraft((d) => ({ ...d, workflowId: ev.currentTarget.value }))}
            >
              {props.workflows.length === 0 ? (
                <option value={draft.workflowId}>{draft.workflowId}</option>
              ) : null}
              {props.workflows.map((w) => (
                <option key={w.id} value={w.id}>
                  {w.name} ({w.id})
                </option>
              ))}
            </select>
          </Field>
          {workflow?.description ? <p class="hint workflow-description">{workflow.description}</p> : null}
          <ImageInputs
            idPrefix="gen"
            inputs={inputs}
            images={draft.images}
            errors={imageErrors}
            onChange={setImage}
          />
          <SpecFields
            idPrefix="gen"
            values={draft.values}
            errors={errors}
            onChange={setValues}
            models={props.models}
            show={{ strength: takesImage, count: true, preview: true, prompt: true }}
          />
          <AdapterPickers
            idPrefix="gen"
            listing={listing}
            prompt={draft.values.prompt}
            negativePrompt={draft.values.negativePrompt}
            onPrompts={setValues}
          />
          <ControlNetUnits
            idPrefix="gen"
            units={draft.controls}
            onUnits={(update) => onDraft((d) => ({ ...d, controls: update(d.controls) }))}
            controlNets={listing.controlNets}
            errors={controlErrors}
            onEdited={(index) => {
              if (controlAt?.index === index) setFormError(undefined);
            }}
            size={{ width: draft.values.width, height: draft.values.height }}
          />
          <Alert text={unplaced && describe(unplaced)} />
          <div class="actions submit-actions">
            <button type="submit" class="primary" disabled={run.running}>
              Generate
            </button>
            {run.running ? (
              <button type="button" onClick={() => controller.current?.abort()}>
                Stop
              </button>
            ) : null}
          </div>
        </form>
        <div ref={results}>
          <RunView run={run} spec={run.session?.spec} />
        </div>
      </div>
    </Page>
  );
}

/** The session once it has finished (at most ~5 s of asking), or undefined. */
async function settled(sessionId: string): Promise<Session | undefined> {
  for (let attempt = 0; attempt < 25; attempt++) {
    const { session } = await api.processing.getSession({ sessionId }, { timeoutMs: 5000 }).catch(() => ({
      session: undefined,
    }));
    if (!session || isFinished(session.state)) return session;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/** The workflow image input an error's field is about: `images.<name>…`, or the spec's own image fields. */
function imageInputFor(field: string | undefined): string | undefined {
  if (field?.startsWith("spec.init_image")) return "image";
  if (field?.startsWith("spec.mask_image")) return "mask";
  return /^images\.([^.[]+)/.exec(field ?? "")?.[1];
}

function RunView(props: { run: Run; spec: GenerationSpec | undefined }) {
  const { session, previewUrl, error, running } = props.run;
  if (!session && !running && !error) {
    return (
      <div class="panel results empty">
        <p>Your images appear here.</p>
      </div>
    );
  }
  const state = session?.state ?? SessionState.UNSPECIFIED;
  const ids = session?.artifactIds ?? [];
  return (
    <section class="panel results" aria-labelledby="results-title">
      <h2 id="results-title">{session ? `Session ${shortId(session.id)}` : "Starting…"}</h2>
      <Progress session={session} running={running} />
      <Alert text={error && describe(error)} />
      <Alert text={session?.error} />
      {running && previewUrl && ids.length === 0 ? (
        <img class="preview" src={previewUrl} alt="Live preview of the generation in progress" />
      ) : null}
      {ids.length > 0 ? (
        <div class="gallery-grid results-grid">
          {ids.map((id, i) => (
            <ArtifactView
              key={id}
              artifactId={id}
              title={`Result ${i + 1} of ${ids.length}`}
              spec={props.spec}
            />
          ))}
        </div>
      ) : null}
      {!running && state === SessionState.PAUSED ? <p>Paused: resume it from the Queue.</p> : null}
    </section>
  );
}

function Progress(props: { session: Session | undefined; running: boolean }) {
  const s = props.session;
  const state = s?.state ?? SessionState.QUEUED;
  const step = s && s.denoiseTotal > 0 ? `step ${s.denoiseStep}/${s.denoiseTotal}` : "";
  const eta = s && s.etaSeconds > 0 && state === SessionState.RUNNING ? `ETA ${seconds(s.etaSeconds)}` : "";
  const took =
    s && isFinished(state) ? `in ${seconds((millis(s.updatedAt) - millis(s.createdAt)) / 1000)}` : "";
  const doing = s && !isFinished(state) ? s.currentStep : "";
  const summary = [stateName(state), step, doing, eta, took].filter(Boolean).join(" · ");
  return (
    <div class="progress">
      <progress max={1} value={s?.progress ?? 0} aria-label="Generation progress" aria-valuetext={summary} />
      <p role="status" aria-live="polite">
        {summary}
      </p>
    </div>
  );
}
