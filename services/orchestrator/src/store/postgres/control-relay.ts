import { randomUUID } from "node:crypto";
import type { SessionAction } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { DomainError, ErrorCode, UnavailableError } from "@dmesh/runtime/errors";
import type { Logger } from "@dmesh/runtime/logger";
import { PgChannel } from "./pg-channel.js";
import type { PgDatabase } from "./pg-database.js";

const COMMANDS = "dmesh_session_control";
const REPLIES = "dmesh_session_control_reply";

interface Command {
  to: string;
  from: string;
  reply: string;
  sessionId: string;
  tenant: string;
  action: SessionAction;
}

interface Reply {
  to: string;
  reply: string;
  code?: number;
  message?: string;
  field?: string;
}

/**
 * Session control commands between replicas (LISTEN/NOTIFY): a pause or cancel that reaches a replica other
 * than the one running the session goes to that one, which applies it and answers once its change is
 * durable; its refusal comes back as the same error.
 */
export class ControlRelay {
  private readonly commands: PgChannel;
  private readonly replies: PgChannel;
  private readonly waiting = new Map<string, (reply: Reply) => void>();

  constructor(
    private readonly db: PgDatabase,
    url: string,
    private readonly replicaId: string,
    private readonly logger: Logger,
    private readonly timeoutMs = 10_000,
  ) {
    this.commands = new PgChannel(url, COMMANDS, logger);
    this.replies = new PgChannel(url, REPLIES, logger);
  }

  /** Applies commands addressed to this replica with `apply` (it throws what the caller gets back). */
  async serve(
    apply: (sessionId: string, tenant: string, action: SessionAction) => Promise<void>,
  ): Promise<void> {
    await this.replies.listen((payload) => {
      const reply = parse<Reply>(payload);
      if (reply?.to === this.replicaId) this.waiting.get(reply.reply)?.(reply);
    });
    await this.commands.listen((payload) => {
      const command = parse<Command>(payload);
      if (command?.to !== this.replicaId) return;
      void (async () => {
        const answer: Reply = { to: command.from, reply: command.reply };
        try {
          await apply(command.sessionId, command.tenant, command.action);
        } catch (err) {
          const domain = err instanceof DomainError ? err : undefined;
          answer.code = domain?.code ?? ErrorCode.Internal;
          answer.message = domain?.field
            ? domain.message.slice(domain.field.length + 2)
            : err instanceof Error
              ? err.message
              : String(err);
          if (domain?.field) answer.field = domain.field;
        }
        await PgChannel.notify(this.db.pool, REPLIES, JSON.stringify(answer)).catch((err: unknown) => {
          this.logger.warn({ err: String(err) }, "session control reply not sent");
        });
      })();
    });
  }

  /** Sends the command to `owner` and resolves once it applied it; throws its refusal, or UNAVAILABLE. */
  async send(owner: string, sessionId: string, tenant: string, action: SessionAction): Promise<void> {
    const reply = randomUUID();
    const answered = new Promise<Reply | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), this.timeoutMs);
      this.waiting.set(reply, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    try {
      const command: Command = { to: owner, from: this.replicaId, reply, sessionId, tenant, action };
      await PgChannel.notify(this.db.pool, COMMANDS, JSON.stringify(command));
      const answer = await answered;
      if (!answer)
        throw new UnavailableError(
          `the orchestrator replica running session ${sessionId} did not answer; send the command again in a moment`,
        );
      if (answer.code !== undefined)
        throw new DomainError(answer.code as ErrorCode, answer.message ?? "refused", answer.field);
    } finally {
      this.waiting.delete(reply);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.commands.close(), this.replies.close()]);
  }
}

function parse<T>(payload: string): T | undefined {
  try {
    return JSON.parse(payload) as T;
  } catch {
    return undefined;
  }
}
