import type { Artifact } from "@dmesh/contracts/dmesh/processing/v1/artifact_pb.js";
import { pngText } from "../images/png-text.js";
import { api } from "./clients.js";

/** A stored image fetched into the page: its record, its bytes, a URL to show it and its infotext. */
export interface ArtifactFile {
  readonly artifact: Artifact;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly url: string;
  /** The AUTOMATIC1111 `parameters` text the image carries; "" when it has none. */
  readonly infotext: string;
}

// Bounded: the oldest file is forgotten (its URL revoked) past this many.
const MAX_CACHED = 300;
const cache = new Map<string, Promise<ArtifactFile>>();

/** Fetches an artifact once (GetArtifact streams its record, then its bytes in chunks). */
export function loadArtifact(id: string): Promise<ArtifactFile> {
  const cached = cache.get(id);
  if (cached) return cached;
  const loading = fetchArtifact(id);
  cache.set(id, loading);
  loading.catch(() => cache.delete(id));
  while (cache.size > MAX_CACHED) {
    const oldest = cache.keys().next().value as string;
    forgetArtifact(oldest);
  }
  return loading;
}

export function forgetArtifact(id: string): void {
  const cached = cache.get(id);
  cache.delete(id);
  cached?.then((file) => URL.revokeObjectURL(file.url)).catch(() => {});
}

async function fetchArtifact(id: string): Promise<ArtifactFile> {
  let artifact: Artifact | undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const message of api.artifacts.getArtifact({ artifactId: id }, { timeoutMs: 60_000 })) {
    if (message.artifact) artifact = message.artifact;
    if (message.chunk.length > 0) {
      chunks.push(message.chunk);
      size += message.chunk.length;
    }
  }
  if (!artifact) throw new Error(`artifact ${id} came without its record`);
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  const url = URL.createObjectURL(new Blob([bytes], { type: artifact.mediaType || "image/png" }));
  return { artifact, bytes, url, infotext: pngText(bytes).parameters ?? "" };
}
