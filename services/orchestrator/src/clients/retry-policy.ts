import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { DomainError } from "@dmesh/runtime/errors";

/**
 * How calls to domain services are retried, in one declarative object (after Temporal's RetryPolicy): how
 * many calls in all, the waits between them when no other healthy replica is left, and which failures are
 * worth another try.
 */
export interface RetryPolicy {
  /** Calls per step and image before the session fails (the first one included). */
  readonly maxAttempts: number;
  /** First wait before retrying on the same set of replicas; multiplied by `coefficient` per attempt. */
  readonly initialIntervalMs: number;
  readonly coefficient: number;
  readonly maximumIntervalMs: number;
  /** Failures worth another try; anything else is an answer about the request itself. */
  readonly retryable: ReadonlySet<Code>;
}

// The replica died or restarted (UNAVAILABLE, UNKNOWN, INTERNAL from a cut stream), hung (DEADLINE_EXCEEDED),
// was busy (RESOURCE_EXHAUSTED) or gave up on the call (ABORTED).
const TRANSIENT = new Set([
  Code.Unavailable,
  Code.Unknown,
  Code.Aborted,
  Code.Internal,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
]);

export function retryPolicy(maxAttempts: number, initialIntervalMs: number): RetryPolicy {
  return {
    maxAttempts,
    initialIntervalMs,
    coefficient: 2,
    maximumIntervalMs: 10_000,
    retryable: TRANSIENT,
  };
}

/** The wait before attempt `attempt` (2, 3, …) when it has to go back to replicas already tried. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.initialIntervalMs * policy.coefficient ** (attempt - 2), policy.maximumIntervalMs);
}

/** Waits out the backoff; an abort ends the wait at once (the caller decides what the abort means). */
export function waitBeforeRetry(policy: RetryPolicy, attempt: number, signal: AbortSignal): Promise<void> {
  return sleep(backoffMs(policy, attempt), undefined, { signal });
}

/** The gRPC code and message of a failed call (or of a domain error such as an empty replica pool). */
export function describeFailure(err: unknown): { code: Code; message: string } {
  if (err instanceof DomainError) return { code: err.code, message: err.message };
  const ce = ConnectError.from(err);
  return { code: ce.code, message: ce.rawMessage };
}
