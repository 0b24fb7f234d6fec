// What the event loop and a session's worker thread say to each other. One message is in flight at a time.
import type { ProviderFallback, SessionSettings, TensorSpec } from "./ort-session.js";

/** The worker's `workerData`: the session to create. */
export interface OpenRequest {
  readonly name: string;
  readonly source: string | Uint8Array;
  readonly settings: SessionSettings;
  readonly externalDataDir: string | undefined;
}

export type OpenReply =
  | {
      readonly kind: "opened";
      readonly inputs: TensorSpec[];
      readonly outputs: TensorSpec[];
      readonly providers: string[];
      readonly fallbacks: ProviderFallback[];
    }
  | { readonly kind: "unloadable"; readonly detail: string };

/**
 * One feed, in a buffer that moves to the worker and back: the caller keeps (and rewrites) its own array, so
 * the values are copied once into the session's buffer for that input, which then travels without copies.
 */
export interface FeedMessage {
  readonly array: "float32" | "int32" | "int64";
  readonly buffer: ArrayBuffer;
  readonly length: number;
  readonly dims: readonly number[];
}

export type ThreadRequest =
  | {
      readonly kind: "run";
      readonly feeds: Record<string, FeedMessage>;
      readonly outputs: readonly string[] | undefined;
    }
  | { readonly kind: "release" };

/** An error as it crossed the thread: its class name and message. */
export interface ErrorMessage {
  readonly name: string;
  readonly message: string;
}

export type ThreadReply =
  | {
      readonly kind: "ran";
      /** Outputs, their buffers transferred. */
      readonly results: Record<string, { data: Float32Array; dims: readonly number[] }>;
      /** The feeds' buffers, back for the next run. */
      readonly buffers: Record<string, ArrayBuffer>;
    }
  | { readonly kind: "failed"; readonly error: ErrorMessage; readonly buffers: Record<string, ArrayBuffer> }
  | { readonly kind: "released" };
