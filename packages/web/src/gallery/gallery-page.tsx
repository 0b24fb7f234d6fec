import { type Session, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { forgetArtifact, loadArtifact } from "../api/artifact-files.js";
import { callError, describe } from "../api/call-error.js";
import { api } from "../api/clients.js";
import { listSessions } from "../api/list-all.js";
import { AppContext } from "../app-context.js";
import { Alert } from "../ui/alert.js";
import { ArtifactView } from "../ui/artifact-view.js";
import { ConfirmDelete } from "../ui/confirm-delete.js";
import { shortId, truncate } from "../ui/format.js";
import { Page } from "../ui/page.js";
import { usePoll } from "../ui/use-poll.js";

const PAGE = 48;

interface Entry {
  readonly session: Session;
  readonly artifactId: string;
  readonly index: number;
}

/**
 * Gallery: the images of completed sessions, newest first, with their infotext; delete removes that one image
 * (the session and its other images stay).
 */
export function GalleryPage(props: { active: boolean }) {
  const { authEpoch } = useContext(AppContext);
  const [entries, setEntries] = useState<Entry[]>();
  const [loadError, setLoadError] = useState<string>();
  const [shown, setShown] = useState(PAGE);
  const [selected, setSelected] = useState<Entry>();
  const [deleteError, setDeleteError] = useState<string>();
  /** What the last delete did: the detail it was pressed in closes, so it is said here. */
  const [notice, setNotice] = useState("");
  const detail = useRef<HTMLElement>(null);

  const load = async (signal: AbortSignal) => {
    try {
      const sessions = await listSessions([SessionState.COMPLETED], signal);
      setEntries(
        sessions.flatMap((session) =>
          session.artifactIds.map((artifactId, index) => ({ session, artifactId, index })),
        ),
      );
      setLoadError(undefined);
    } catch (err) {
      if (!signal.aborted) setLoadError(describe(callError(err)));
    }
  };
  usePoll(props.active, 5000, load, [authEpoch]);

  useEffect(() => {
    setDeleteError(undefined);
    if (!selected) return;
    setNotice("");
    detail.current?.focus();
  }, [selected]);

  const remove = async (entry: Entry) => {
    try {
      await api.artifacts.deleteArtifact({ artifactId: entry.artifactId }, { timeoutMs: 30_000 });
      forgetArtifact(entry.artifactId);
      setNotice(`Deleted image ${entry.index + 1} of session ${shortId(entry.session.id)}`);
      setSelected(undefined);
      await load(new AbortController().signal);
    } catch (err) {
      setDeleteError(describe(callError(err)));
    }
  };

  const list = entries?.slice(0, shown) ?? [];
  return (
    <Page title="Gallery">
      <Alert text={loadError} />
      <p class="status" role="status">
        {notice}
      </p>
      {entries?.length === 0 ? <p>No images yet: make one on Generate.</p> : null}
      {entries === undefined && !loadError ? <p class="loading">Loading images…</p> : null}
      <div class="split gallery-split">
        <ul class="thumbs" aria-label="Images">
          {list.map((e) => (
            <li key={`${e.session.id}-${e.index}`}>
              <Thumbnail
                entry={e}
                selected={selected?.artifactId === e.artifactId}
                onOpen={() => setSelected(e)}
              />
            </li>
          ))}
        </ul>
        {selected ? (
          <section class="panel detail" ref={detail} tabIndex={-1} aria-label="Selected image">
            <p class="prompt">{selected.session.spec?.conditioning?.prompt}</p>
            <ArtifactView
              artifactId={selected.artifactId}
              title={`Image ${selected.index + 1} of session ${shortId(selected.session.id)}`}
              spec={selected.session.spec}
            >
              <ConfirmDelete
                what={`image ${selected.index + 1} of session ${shortId(selected.session.id)}`}
                onDelete={() => void remove(selected)}
              />
            </ArtifactView>
            <Alert text={deleteError} />
          </section>
        ) : null}
      </div>
      {entries && entries.length > shown ? (
        <button type="button" onClick={() => setShown((n) => n + PAGE)}>
          Show more ({entries.length - shown} left)
        </button>
      ) : null}
    </Page>
  );
}

/** A thumbnail that fetches its image once it comes near the viewport. */
function Thumbnail(props: { entry: Entry; selected: boolean; onOpen: () => void }) {
  const ref = useRef<HTMLButtonElement>(null);
  const [url, setUrl] = useState<string>();
  const [failed, setFailed] = useState(false);
  const { entry } = props;
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    let live = true;
    const observer = new IntersectionObserver(
      (seen) => {
        if (!seen.some((s) => s.isIntersecting)) return;
        observer.disconnect();
        loadArtifact(entry.artifactId).then(
          (f) => live && setUrl(f.url),
          () => live && setFailed(true),
        );
      },
      { rootMargin: "400px" },
    );
    observer.observe(el);
    return () => {
      live = false;
      observer.disconnect();
    };
  }, [entry.artifactId]);
  const prompt = truncate(entry.session.spec?.conditioning?.prompt ?? "", 80);
  return (
    <button
      ref={ref}
      type="button"
      class={`thumb${props.selected ? " selected" : ""}`}
      aria-pressed={props.selected}
      aria-label={`Open image ${entry.index + 1} of session ${shortId(entry.session.id)}: ${prompt}`}
      onClick={props.onOpen}
    >
      {url ? <img src={url} alt="" /> : <span class="placeholder">{failed ? "unavailable" : "…"}</span>}
    </button>
  );
}
