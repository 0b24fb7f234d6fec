import { NotFoundError, registerDomainError } from "@dmesh/runtime/errors";

/** A lease id that is unknown, released, or expired because its holder stopped renewing it. */
export class LeaseNotFoundError extends Error {
  override readonly name = "LeaseNotFoundError";
  readonly code = "lease_not_found";

  constructor(readonly leaseId: string) {
    super(`lease ${leaseId} does not exist: it was released, expired without renewal, or never granted`);
  }
}

// Every RPC that names a lease names it in `lease_id`.
registerDomainError(LeaseNotFoundError, (err) => new NotFoundError("lease_id", err.message));
