import {
  type Session,
  SessionAction,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { useContext, useState } from "preact/hooks";
import { callError, describe } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { listSessions } from "../api/list-all.js";
import { AppContext } from "../app-context.js";
import { Alert } from "../ui/alert.js";
import { ConfirmDelete } from "../ui/confirm-delete.js";
import { controlProps } from "../ui/field.js";
import { isFinished, seconds, shortId, stateName, truncate, when } from "../ui/format.js";
import { Page } from "../ui/page.js";
import { usePoll } from "../ui/use-poll.js";

const LIVE = [SessionState.QUEUED, SessionState.RUNNING, SessionState.PAUSED];
const SHOWN = 100;

type Filter = "live" | "all";

/** Queue: sessions as they run, with pause, resume, cancel, restart and delete. */
export function QueuePage(props: { active: boolean }) {
  const { authEpoch } = useContext(AppContext);
  const [filter, setFilter] = useState<Filter>("all");
  const [sessions, setSessions] = useState<Session[]>();
  const [loadError, setLoadError] = useState<string>();
  const [rowErrors, setRowErrors] = useState<Record<string, string>>({});

  const load = async (signal: AbortSignal) => {
    try {
      setSessions(await listSessions(filter === "live" ? LIVE : [], signal));
      setLoadError(undefined);
    } catch (err) {
      if (!signal.aborted) setLoadError(describe(callError(err)));
    }
  };
  usePoll(props.active, 1000, load, [filter, authEpoch]);

  const act = async (session: Session, action: SessionAction | "delete") => {
    setRowErrors((e) => ({ ...e, [session.id]: "" }));
    try {
      if (action === "delete")
        await api.processing.deleteSession({ sessionId: session.id }, { timeoutMs: 30_000 });
      else await api.processing.controlSession({ sessionId: session.id, action }, { timeoutMs: 30_000 });
      await load(new AbortController().signal);
    } catch (err) {
      setRowErrors((e) => ({ ...e, [session.id]: describe(callError(err)) }));
    }
  };

  const shown = sessions?.slice(0, SHOWN) ?? [];
  return (
    <Page
      title="Queue"
      head={
        <div class="field inline">
          <label for="queue-filter">Show</label>
          <select
            {...controlProps("queue-filter", undefined)}
            value={filter}
            onChange={(ev) => setFilter(ev.currentTarget.value as Filter)}
          >
            <option value="all">All sessions</option>
            <option value="live">Queued, running and paused</option>
          </select>
        </div>
      }
    >
      <Alert text={loadError} />
      {sessions && sessions.length === 0 ? <p>No sessions.</p> : null}
      {sessions === undefined && !loadError ? <p class="loading">Loading sessions…</p> : null}
      <ul class="cards" aria-label="Sessions">
        {shown.map((s) => {
          const name = shortId(s.id);
          const running = s.state === SessionState.RUNNING;
          const queued = s.state === SessionState.QUEUED;
          const paused = s.state === SessionState.PAUSED;
          const button = (label: string, action: SessionAction | "delete") => (
            <button type="button" aria-label={`${label} session ${name}`} onClick={() => void act(s, action)}>
              {label}
            </button>
          );
          return (
            <li key={s.id} class={`card state-${stateName(s.state)}`} aria-label={`Session ${name}`}>
              <div class="card-head">
                <span class="badge">{stateName(s.state)}</span>
                <code>{name}</code>
                <span class="muted">{s.workflowId}</span>
                <span class="muted">{when(s.createdAt)}</span>
              </div>
              <p class="prompt">{truncate(s.spec?.conditioning?.prompt ?? "", 200)}</p>
              {!isFinished(s.state) || s.state === SessionState.COMPLETED ? (
                <div class="progress">
                  <progress max={1} value={s.progress} aria-label={`Progress of session ${name}`} />
                  <span>
                    {s.denoiseTotal > 0 ? `step ${s.denoiseStep}/${s.denoiseTotal}` : ""}
                    {running && s.etaSeconds > 0 ? ` · ETA ${seconds(s.etaSeconds)}` : ""}
                    {s.batchId ? ` · batch ${shortId(s.batchId)}` : ""}
                  </span>
                </div>
              ) : null}
              {s.error ? <p class="field-error">{s.error}</p> : null}
              <div class="actions">
                {running || queued ? button("Pause", SessionAction.PAUSE) : null}
                {paused ? button("Resume", SessionAction.RESUME) : null}
                {!isFinished(s.state) ? button("Cancel", SessionAction.CANCEL) : null}
                {!running ? button("Restart", SessionAction.RESTART) : null}
                <ConfirmDelete what={`session ${name}`} onDelete={() => void act(s, "delete")} />
              </div>
              <Alert text={rowErrors[s.id]} />
            </li>
          );
        })}
      </ul>
      {sessions && sessions.length > SHOWN ? (
        <p class="muted">
          Showing the newest {SHOWN} of {sessions.length}.
        </p>
      ) : null}
    </Page>
  );
}
