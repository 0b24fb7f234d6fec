import type { GenerationSpec } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { ComponentChildren } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { type ArtifactFile, loadArtifact } from "../api/artifact-files.js";
import { callError, describe } from "../api/call-error.js";
import { AppContext } from "../app-context.js";
import { copyText } from "./clipboard.js";

/**
 * One stored image with what can be done with it: its infotext, copy the parameters, send it to img2img or
 * inpaint, download it; `children` adds page-specific actions (e.g. Delete in the Gallery).
 */
export function ArtifactView(props: {
  artifactId: string;
  /** The image's accessible name, e.g. "Result 1 of 2". */
  title: string;
  spec: GenerationSpec | undefined;
  children?: ComponentChildren;
}) {
  const { sendImage } = useContext(AppContext);
  const [file, setFile] = useState<ArtifactFile>();
  const [error, setError] = useState<string>();
  const [status, setStatus] = useState("");

  useEffect(() => {
    let live = true;
    setFile(undefined);
    setError(undefined);
    loadArtifact(props.artifactId).then(
      (f) => live && setFile(f),
      (err) => live && setError(describe(callError(err))),
    );
    return () => {
      live = false;
    };
  }, [props.artifactId]);

  if (error)
    return (
      <p class="field-error" role="alert">
        {props.title}: {error}
      </p>
    );
  if (!file) return <p class="loading">Loading {props.title.toLowerCase()}…</p>;
  const { artifact } = file;
  const seed = artifact.seed.toString();
  return (
    <figure class="artifact">
      <img
        src={file.url}
        alt={`${props.title}, seed ${seed}`}
        width={artifact.width}
        height={artifact.height}
      />
      <figcaption>
        {artifact.width}×{artifact.height}, seed {seed}
      </figcaption>
      {file.infotext ? (
        <details>
          <summary>Parameters</summary>
          <pre class="infotext">{file.infotext}</pre>
        </details>
      ) : null}
      <div class="actions">
        <button
          type="button"
          disabled={!file.infotext}
          onClick={() =>
            copyText(file.infotext).then(
              () => setStatus("Parameters copied"),
              (err: Error) => setStatus(`Could not copy: ${err.message}`),
            )
          }
        >
          Copy parameters
        </button>
        <button type="button" onClick={() => sendImage("img2img", file, props.spec)}>
          Send to img2img
        </button>
        <button type="button" onClick={() => sendImage("inpaint", file, props.spec)}>
          Send to inpaint
        </button>
        <a
          class="button"
          href={file.url}
          download={`dmesh-${artifact.sessionId.slice(0, 8)}-${artifact.imageIndex}-${seed}.${extension(artifact.mediaType)}`}
        >
          Download
        </a>
        {props.children}
      </div>
      <p class="status" role="status">
        {status}
      </p>
    </figure>
  );
}

function extension(mediaType: string): string {
  const sub = mediaType.split("/")[1] ?? "";
  return /^[a-z0-9]{2,5}$/.test(sub) ? sub : "png";
}
