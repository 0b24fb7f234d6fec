import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Value } from "@bufbuild/protobuf/wkt";
import type { GenerationSpecSchema } from "@dmesh/contracts/dmesh/common/v1/generation_pb.js";
import type { ImageInput } from "@dmesh/contracts/dmesh/processing/v1/processing_pb.js";
import {
  type Session,
  SessionEventKind,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import type { OrchestratorClients } from "./clients.js";
import { ProgressBar } from "./progress-bar.js";

export interface RunWorkflowOptions {
  workflowId: string;
  spec: MessageInitShape<typeof GenerationSpecSchema>;
  images?: Record<
    string,
    MessageInitShape<typeof import("@dmesh/contracts/dmesh/processing/v1/processing_pb.js").ImageInputSchema>
  >;
  /** The workflow's scalar inputs. */
  inputs?: Record<string, Value>;
  /** A file path (image i > 0 gets "-i" before the extension) or a directory. */
  out: string;
  requestId?: string;
  /** Return once the session exists, leaving it running on the orchestrator. */
  detach?: boolean;
  signal?: AbortSignal;
}

/** Runs a workflow through the orchestrator with a progress bar and saves every image it stores. */
export async function runWorkflow(
  clients: OrchestratorClients,
  options: RunWorkflowOptions,
): Promise<{ session: Session | undefined; files: string[] }> {
  const bar = new ProgressBar();
  const files: string[] = [];
  let session: Session | undefined;
  const stream = clients.processing.executeWorkflow(
    {
      workflowId: options.workflowId,
      spec: options.spec,
      images: (options.images ?? {}) as Record<string, ImageInput>,
      inputs: options.inputs ?? {},
      requestId: options.requestId ?? "",
      detach: options.detach ?? false,
    },
    { signal: options.signal },
  );
  for await (const { event } of stream) {
    if (!event?.session) continue;
    session = event.session;
    if (event.kind === SessionEventKind.SNAPSHOT) {
      // Detached, the orchestrator keeps the session running when this stream closes.
      if (options.detach) break;
      process.stderr.write(`session ${session.id}\n`);
    }
    if (event.kind === SessionEventKind.PROGRESS && session.denoiseTotal > 0) {
      const eta = session.etaSeconds > 0 ? `eta ${session.etaSeconds.toFixed(1)}s` : "";
      bar.update(session.currentStep || "denoise", session.denoiseStep, session.denoiseTotal, eta);
    }
    if (event.kind === SessionEventKind.ARTIFACT && event.artifactId) {
      bar.done();
      const path = outputPath(options.out, files.length, session.id);
      await saveArtifact(clients, event.artifactId, path);
      files.push(path);
    }
  }
  bar.done();
  return { session, files };
}

export async function saveArtifact(
  clients: OrchestratorClients,
  artifactId: string,
  path: string,
): Promise<void> {
  const chunks: Uint8Array[] = [];
  for await (const res of clients.artifacts.getArtifact({ artifactId })) {
    if (res.chunk.length > 0) chunks.push(res.chunk);
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, Buffer.concat(chunks));
}

function outputPath(out: string, index: number, sessionId: string): string {
  if (extname(out) === "") return join(out, `${sessionId}-${index}.png`);
  if (index === 0) return out;
  const ext = extname(out);
  return `${out.slice(0, -ext.length)}-${index}${ext}`;
}

export function describeEnd(session: Session | undefined): string {
  if (!session) return "no session";
  const state = SessionState[session.state].toLowerCase();
  return session.error ? `${state}: ${session.error}` : state;
}
