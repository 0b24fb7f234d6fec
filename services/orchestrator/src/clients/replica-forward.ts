import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FIELD_TRAILER } from "@dmesh/runtime";
import type { Replica, ReplicaPool } from "./replica-pool.js";

/**
 * Downstream answers about the request itself: the caller sent it as it is forwarded, so they are the
 * caller's to read (code, message, and the field named in the `dmesh-field` trailer).
 */
const THE_CALLERS = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.ResourceExhausted,
  Code.Canceled,
  Code.DeadlineExceeded,
]);

/**
 * Runs a read-only call that the orchestrator forwards unchanged (listings, previews) on a healthy replica of
 * `pool`, the least loaded first. A replica that cannot be reached (UNAVAILABLE) is marked down and the call
 * goes to the next one, at most once per replica; answers about the request keep their code and field; any
 * other failure is the mesh's, said as UNAVAILABLE (no replica answered) or INTERNAL, with the replica's
 * address and message in `cause` for the logs.
 */
export async function forwardToReplica<S extends DescService, T>(
  pool: ReplicaPool<S>,
  call: (replica: Replica<S>) => Promise<T>,
): Promise<T> {
  const tried = new Set<string>();
  let lastFailure: ConnectError | undefined;
  const replicas = Math.max(1, pool.all().length);
  while (tried.size < replicas) {
    const replica = pool.pick(tried);
    if (tried.has(replica.address)) break;
    tried.add(replica.address);
    try {
      return await call(replica);
    } catch (err) {
      const failure = ConnectError.from(err);
      if (THE_CALLERS.has(failure.code)) {
        const field = failure.metadata.get(FIELD_TRAILER);
        throw new ConnectError(
          failure.rawMessage,
          failure.code,
          field ? { [FIELD_TRAILER]: field } : undefined,
          undefined,
          err,
        );
      }
      if (failure.code !== Code.Unavailable) {
        throw new ConnectError(
          `the ${pool.domain} service failed (${Code[failure.code]})`,
          Code.Internal,
          undefined,
          undefined,
          err,
        );
      }
      pool.markDown(replica.address, failure.rawMessage);
      lastFailure = failure;
    }
  }
  throw new ConnectError(
    `no ${pool.domain} replica answered (${tried.size} tried): ${lastFailure?.rawMessage ?? "none is configured"}`,
    Code.Unavailable,
    undefined,
    undefined,
    lastFailure,
  );
}
