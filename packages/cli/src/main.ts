#!/usr/bin/env node
import { Code, ConnectError } from "@connectrpc/connect";
import { BATCH_HELP, batch, batchStatus } from "./commands/batch.js";
import { EVENTS_HELP, events } from "./commands/events.js";
import { GENERATE_HELP, generate } from "./commands/generate.js";
import { MODELS_HELP, models } from "./commands/models.js";
import { SESSIONS_HELP, sessions } from "./commands/sessions.js";
import { STATUS_HELP, status } from "./commands/status.js";
import { UP_HELP, up } from "./commands/up.js";
import { WORKFLOW_HELP, workflow } from "./commands/workflow.js";
import { WORKFLOWS_HELP, workflows } from "./commands/workflows.js";

const HELP = `dmesh: diffusion mesh command line

Commands that call the orchestrator send --api-key KEY (or DMESH_API_KEY) as a bearer token.

${UP_HELP}

${GENERATE_HELP}

${STATUS_HELP}

${WORKFLOWS_HELP}

${WORKFLOW_HELP}

${MODELS_HELP}

${SESSIONS_HELP}

${BATCH_HELP}

${EVENTS_HELP}
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return up(rest);
    case "generate":
      return generate(rest);
    case "status":
      return status(rest);
    case "workflows":
      return workflows(rest);
    case "workflow":
      return workflow(rest);
    case "models":
      return models(rest);
    case "sessions":
    case "session":
    case "pause":
    case "resume":
    case "cancel":
    case "restart":
    case "delete":
    case "watch":
      return sessions(command, rest);
    case "batch":
      return batch(rest);
    case "batch-status":
      return batchStatus(rest);
    case "events":
      return events(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`dmesh: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConnectError) {
      const field = err.metadata.get("dmesh-field");
      process.stderr.write(
        `dmesh: ${Code[err.code]}: ${err.rawMessage}${field ? ` (field ${field})` : ""}\n`,
      );
    } else process.stderr.write(`dmesh: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
