import { type Batch, BatchAction, BatchState } from "@dmesh/contracts/dmesh/processing/v1/batch_pb.js";
import { SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { useContext, useState } from "preact/hooks";
import { type CallError, callError, describe } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { listBatches } from "../api/list-all.js";
import { AppContext } from "../app-context.js";
import { type SpecErrors, SpecFields } from "../generate/spec-fields.js";
import { DEFAULT_VALUES, inputFor, SPEC_FIELDS, type SpecValues, specOf } from "../generate/spec-form.js";
import { Alert } from "../ui/alert.js";
import { ConfirmDelete } from "../ui/confirm-delete.js";
import { controlProps, Field } from "../ui/field.js";
import { shortId, stateName, truncate, when } from "../ui/format.js";
import { Page } from "../ui/page.js";
import { usePoll } from "../ui/use-poll.js";
import { AXIS_KINDS, type AxisKindName, type AxisRow, axesOf } from "./batch-axes.js";

const FIRST_AXES: AxisRow[] = [{ kind: "seed", text: "1, 2, 3" }];

/** Batches: the product of axes over a base spec, run across the mesh; items' states, cancel and retry. */
export function BatchesPage(props: { active: boolean; models: readonly string[] }) {
  const { authEpoch } = useContext(AppContext);
  const [values, setValues] = useState<SpecValues>({ ...DEFAULT_VALUES, steps: "20", preview: false });
  const [rows, setRows] = useState<AxisRow[]>(FIRST_AXES);
  const [formError, setFormError] = useState<CallError>();
  const [batches, setBatches] = useState<Batch[]>();
  const [loadError, setLoadError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const load = async (signal: AbortSignal) => {
    try {
      setBatches(await listBatches(signal));
      setLoadError(undefined);
    } catch (err) {
      if (!signal.aborted) setLoadError(describe(callError(err)));
    }
  };
  usePoll(props.active, 1000, load, [authEpoch]);
  const update = (batch: Batch) =>
    setBatches((list) => [batch, ...(list ?? []).filter((b) => b.id !== batch.id)].sort(newestFirst));

  /**
   * ExecuteBatch starts the batch, and its first message is the started batch. The stream is left there: the
   * batch runs on the server without it, polling shows its progress, and a page has only six HTTP/1.1
   * connections to the server, which streams kept open would use up.
   */
  const start = async (batchId: string) => {
    for await (const { event } of api.processing.executeBatch({ batchId }, { timeoutMs: 30_000 })) {
      if (event?.batch) update(event.batch);
      break;
    }
  };

  const create = async () => {
    setFormError(undefined);
    let request: Parameters<typeof api.processing.createBatch>[0];
    try {
      request = { workflowId: "txt2img", base: specOf(values, false), axes: axesOf(rows) };
    } catch (err) {
      setFormError(callError(err));
      return;
    }
    setBusy(true);
    try {
      const { batch } = await api.processing.createBatch(request, { timeoutMs: 30_000 });
      if (batch) {
        update(batch);
        await start(batch.id);
      }
    } catch (err) {
      setFormError(callError(err));
    } finally {
      setBusy(false);
    }
  };

  // Item errors name `batch item N.<path>`; the base inputs carry `spec.<path>`.
  const field = formError?.field?.replace(/^(?:batch item \d+|base)\./, "spec.");
  const axisIndex = /^axes\[(\d+)\]/.exec(field ?? "")?.[1];
  const specInput = axisIndex === undefined ? inputFor(field, SPEC_FIELDS) : undefined;
  const errors: SpecErrors = specInput ? { [specInput]: formError?.message } : {};
  const unplaced = formError && axisIndex === undefined && !specInput ? formError : undefined;

  return (
    <Page title="Batches">
      <div class="split">
        <form
          class="panel"
          noValidate
          aria-label="New batch"
          onSubmit={(ev) => {
            ev.preventDefault();
            void create();
          }}
        >
          <h2>New batch</h2>
          <p class="hint">Every combination of the axes' values becomes one item, over the base settings.</p>
          <fieldset class="axes">
            <legend>Axes</legend>
            {rows.map((row, i) => {
              const kind = AXIS_KINDS[row.kind];
              const id = `batch-axis-${i}`;
              const error = axisIndex === String(i) ? formError?.message : undefined;
              return (
                <div class="axis" key={i}>
                  <Field id={`${id}-kind`} label={`Axis ${i + 1}`}>
                    <select
                      {...controlProps(`${id}-kind`, undefined)}
                      value={row.kind}
                      onChange={(ev) =>
                        setRows(
                          rows.map((r, j) =>
                            j === i ? { ...r, kind: ev.currentTarget.value as AxisKindName } : r,
                          ),
                        )
                      }
                    >
                      {Object.entries(AXIS_KINDS).map(([name, k]) => (
                        <option key={name} value={name}>
                          {k.label}
                        </option>
                      ))}
                    </select>
                  </Field>
                  <Field
                    id={`${id}-values`}
                    label={`${kind.label} values`}
                    error={error}
                    hint={kind.hint}
                    wide
                  >
                    {kind.multiline ? (
                      <textarea
                        rows={3}
                        {...controlProps(`${id}-values`, error)}
                        value={row.text}
                        onInput={(ev) =>
                          setRows(rows.map((r, j) => (j === i ? { ...r, text: ev.currentTarget.value } : r)))
                        }
                      />
                    ) : (
                      <input
                        type="text"
                        {...controlProps(`${id}-values`, error)}
                        value={row.text}
                        onInput={(ev) =>
                          setRows(rows.map((r, j) => (j === i ? { ...r, text: ev.currentTarget.value } : r)))
                        }
                      />
                    )}
                  </Field>
                  <button
                    type="button"
                    aria-label={`Remove axis ${i + 1}`}
                    onClick={() => setRows(rows.filter((_, j) => j !== i))}
                  >
                    Remove
                  </button>
                </div>
              );
            })}
            <button type="button" onClick={() => setRows([...rows, { kind: "cfg", text: "" }])}>
              Add axis
            </button>
          </fieldset>
          <details open>
            <summary>Base settings</summary>
            <SpecFields
              idPrefix="batch"
              values={values}
              errors={errors}
              onChange={(patch) => setValues((v) => ({ ...v, ...patch }))}
              models={props.models}
              show={{ strength: false, count: true, preview: false, prompt: true }}
            />
          </details>
          <Alert text={unplaced && describe(unplaced)} />
          <div class="actions submit-actions">
            <button type="submit" class="primary" disabled={busy}>
              Create batch
            </button>
          </div>
        </form>
        <div class="panel">
          <h2>Recent batches</h2>
          <Alert text={loadError} />
          {batches?.length === 0 ? <p>No batches yet.</p> : null}
          <ul class="cards" aria-label="Batches">
            {batches?.map((b, i) => (
              <BatchCard
                key={b.id}
                batch={b}
                open={i === 0}
                onChange={update}
                onDeleted={() => load(new AbortController().signal)}
              />
            ))}
          </ul>
        </div>
      </div>
    </Page>
  );
}

function newestFirst(a: Batch, b: Batch): number {
  return Number(b.createdAt?.seconds ?? 0n) - Number(a.createdAt?.seconds ?? 0n);
}

function BatchCard(props: {
  batch: Batch;
  open: boolean;
  onChange: (b: Batch) => void;
  onDeleted: () => void;
}) {
  const b = props.batch;
  const [error, setError] = useState<string>();
  const name = shortId(b.id);
  const done = b.completed + b.failed + b.cancelled;
  const finished =
    b.state === BatchState.COMPLETED || b.state === BatchState.FAILED || b.state === BatchState.CANCELLED;
  const control = async (action: BatchAction) => {
    setError(undefined);
    try {
      const { batch } = await api.processing.controlBatch({ batchId: b.id, action }, { timeoutMs: 30_000 });
      if (batch) props.onChange(batch);
    } catch (err) {
      setError(describe(callError(err)));
    }
  };
  const remove = async () => {
    setError(undefined);
    try {
      await api.processing.deleteBatch({ batchId: b.id }, { timeoutMs: 60_000 });
      props.onDeleted();
    } catch (err) {
      setError(describe(callError(err)));
    }
  };
  return (
    <li class="card" aria-label={`Batch ${name}`}>
      <div class="card-head">
        <span class="badge">{BatchState[b.state]?.toLowerCase()}</span>
        <code>{name}</code>
        <span class="muted">{when(b.createdAt)}</span>
      </div>
      <div class="progress">
        <progress max={b.items.length || 1} value={done} aria-label={`Progress of batch ${name}`} />
        <span>
          {b.completed} completed, {b.failed} failed, {b.cancelled} cancelled of {b.items.length}
        </span>
      </div>
      <details open={props.open}>
        <summary>Items</summary>
        <div class="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Prompt</th>
                <th scope="col">Seed</th>
                <th scope="col">CFG</th>
                <th scope="col">Steps</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {b.items.map((item) => (
                <tr key={item.index} class={`state-${stateName(item.state)}`}>
                  <td>{item.index + 1}</td>
                  <td>{truncate(item.spec?.conditioning?.prompt ?? "", 60)}</td>
                  <td>{item.spec?.params?.seed?.toString() ?? "random"}</td>
                  <td>{item.spec?.params?.guidanceScale ?? ""}</td>
                  <td>{item.spec?.scheduler?.steps ?? ""}</td>
                  <td>
                    {stateName(item.state)}
                    {item.error ? <span class="field-error"> {item.error}</span> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
      <div class="actions">
        {!finished ? (
          <button
            type="button"
            aria-label={`Cancel batch ${name}`}
            onClick={() => void control(BatchAction.CANCEL)}
          >
            Cancel
          </button>
        ) : null}
        {finished &&
        b.items.some((i) => i.state === SessionState.FAILED || i.state === SessionState.CANCELLED) ? (
          <button
            type="button"
            aria-label={`Retry failed items of batch ${name}`}
            onClick={() => void control(BatchAction.RETRY_FAILED)}
          >
            Retry failed
          </button>
        ) : null}
        <ConfirmDelete what={`batch ${name}`} onDelete={() => void remove()} />
      </div>
      <Alert text={error} />
    </li>
  );
}
