import type { GetMeshStatusResponse } from "@dmesh/contracts/dmesh/processing/v1/mesh_pb.js";
import type { Workflow } from "@dmesh/contracts/dmesh/processing/v1/workflow_pb.js";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { apiKey, onSignInNeeded, type SignInNeeded } from "./api/api-key.js";
import { callError, describe } from "./api/call-error.js";
import { api } from "./api/clients.js";
import { type AppActions, AppContext } from "./app-context.js";
import { BatchesPage } from "./batches/batches-page.js";
import { GalleryPage } from "./gallery/gallery-page.js";
import { EMPTY_DRAFT, type GenerateDraft } from "./generate/draft.js";
import { GeneratePage } from "./generate/generate-page.js";
import { valuesOf } from "./generate/spec-form.js";
import { MeshPage } from "./mesh/mesh-page.js";
import { QueuePage } from "./queue/queue-page.js";
import { SignInDialog } from "./sign-in.js";

const PAGES = [
  ["generate", "Generate"],
  ["queue", "Queue"],
  ["batches", "Batches"],
  ["gallery", "Gallery"],
  ["mesh", "Mesh"],
] as const;
type PageName = (typeof PAGES)[number][0];

function pageFromHash(): PageName {
  const name = location.hash.replace(/^#\/?/, "");
  return PAGES.find(([p]) => p === name)?.[0] ?? "generate";
}

/** The playground: one page per part of the API, all kept mounted so a running generation survives a visit elsewhere. */
export function App() {
  const [page, setPage] = useState<PageName>(pageFromHash);
  const [draft, setDraft] = useState<GenerateDraft>(EMPTY_DRAFT);
  const [workflows, setWorkflows] = useState<Workflow[]>([]);
  const [workflowsError, setWorkflowsError] = useState<string>();
  const [need, setNeed] = useState<SignInNeeded>();
  // The last refusal, kept after "Not now" so that the header can offer to sign in.
  const [refused, setRefused] = useState<SignInNeeded>();
  const [authEpoch, setAuthEpoch] = useState(0);
  const [signedIn, setSignedIn] = useState(apiKey.get() !== null);

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  useEffect(
    () =>
      onSignInNeeded((n) => {
        setRefused(n);
        setNeed((open) => open ?? n);
      }),
    [],
  );

  // Every model the mesh has (ListModels), with the warm ones the Mesh page sees added as it polls.
  const [listedModels, setListedModels] = useState<string[]>([]);
  const [warmModels, setWarmModels] = useState<string[]>([]);
  const onStatus = useCallback((s: GetMeshStatusResponse) => {
    setWarmModels(s.instructors.flatMap((i) => i.warmModels));
  }, []);
  const models = useMemo(
    () => [...new Set([...listedModels, ...warmModels])].sort(),
    [listedModels, warmModels],
  );
  // Workflows and models, loaded again after signing in.
  useEffect(() => {
    const signal = AbortSignal.timeout(15_000);
    api.processing.listWorkflows({}, { signal }).then(
      (r) => {
        setWorkflows(r.workflows);
        setWorkflowsError(undefined);
      },
      (err) => setWorkflowsError(describe(callError(err))),
    );
    api.models.listModels({}, { signal }).then(
      (r) => setListedModels(r.models.map((m) => m.id)),
      () => {},
    );
    api.mesh.getMeshStatus({}, { signal }).then(onStatus, () => {});
  }, [authEpoch]);

  const actions = useMemo<AppActions>(
    () => ({
      authEpoch,
      sendImage(target, file, spec) {
        const { artifact } = file;
        setDraft((d) => ({
          ...d,
          workflowId: target,
          values: {
            ...(spec ? valuesOf(spec, d.values) : d.values),
            width: String(artifact.width),
            height: String(artifact.height),
          },
          images: {
            image: {
              url: file.url,
              width: artifact.width,
              height: artifact.height,
              label: `image ${artifact.imageIndex + 1} of session ${artifact.sessionId.slice(0, 8)}, seed ${artifact.seed}`,
              input: { source: { case: "artifactId", value: artifact.id } },
            },
          },
        }));
        location.hash = "#/generate";
        requestAnimationFrame(() => document.getElementById("gen-prompt")?.focus());
      },
    }),
    [authEpoch],
  );

  return (
    <AppContext.Provider value={actions}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">dmesh</span>
        <nav aria-label="Pages">
          {PAGES.map(([name, label]) => (
            <a key={name} href={`#/${name}`} aria-current={page === name ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        {!signedIn && refused && !need ? (
          <button type="button" class="account" onClick={() => setNeed(refused)}>
            Sign in
          </button>
        ) : null}
        {signedIn ? (
          <button
            type="button"
            class="account"
            onClick={() => {
              apiKey.clear();
              setSignedIn(false);
              setAuthEpoch((n) => n + 1);
            }}
          >
            Sign out
          </button>
        ) : null}
      </header>
      <main id="main">
        <div hidden={page !== "generate"}>
          <GeneratePage
            draft={draft}
            onDraft={setDraft}
            workflows={workflows}
            workflowsError={workflowsError}
            models={models}
          />
        </div>
        <div hidden={page !== "queue"}>
          <QueuePage active={page === "queue"} />
        </div>
        <div hidden={page !== "batches"}>
          <BatchesPage active={page === "batches"} models={models} />
        </div>
        <div hidden={page !== "gallery"}>
          <GalleryPage active={page === "gallery"} />
        </div>
        <div hidden={page !== "mesh"}>
          <MeshPage active={page === "mesh"} onStatus={onStatus} />
        </div>
      </main>
      {need ? (
        <SignInDialog
          need={need}
          onClose={() => setNeed(undefined)}
          onSignedIn={() => {
            setNeed(undefined);
            setRefused(undefined);
            setSignedIn(true);
            setAuthEpoch((n) => n + 1);
          }}
        />
      ) : null}
    </AppContext.Provider>
  );
}
