import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Session,
  SessionAction,
  SessionEventKind,
  SessionSchema,
  SessionState,
} from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { ProgressBar } from "../progress-bar.js";
import { describeEnd, saveArtifact } from "../run-workflow.js";
import { printTable } from "./status.js";

export const SESSIONS_HELP = `dmesh sessions [--url URL]                 list sessions
dmesh session ID                           show one
dmesh pause|resume|cancel|restart ID       control one
dmesh delete ID                            delete it and its images
dmesh watch ID [--out DIR]                 follow it to the end, saving its images`;

const ACTIONS: Record<string, SessionAction> = {
  pause: SessionAction.PAUSE,
  resume: SessionAction.RESUME,
  cancel: SessionAction.CANCEL,
  restart: SessionAction.RESTART,
};

// A pause waits for the step in progress; a tiny model's step takes milliseconds, SDXL's on a CPU a minute.
const PAUSE_WAIT_MS = 120_000;

/** Follows a session until it is no longer running, or `waitMs` passes; its last state seen. */
async function settled(
  clients: ReturnType<typeof orchestratorClients>,
  id: string,
  waitMs: number,
): Promise<Session | undefined> {
  let last: Session | undefined;
  try {
    for await (const { event } of clients.processing.watchSession({ sessionId: id }, { timeoutMs: waitMs })) {
      last = event?.session ?? last;
      if (last && last.state !== SessionState.RUNNING && last.state !== SessionState.QUEUED) break;
    }
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.DeadlineExceeded)) throw err;
  }
  return last;
}

export async function sessions(command: string, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string", default: DEFAULT_URL },
      ...API_KEY_OPTION,
      out: { type: "string", default: ".dmesh/out" },
    },
  });
  const clients = orchestratorClients(values.url, values["api-key"]);
  const id = positionals[0] ?? "";
  const opts = { timeoutMs: 30_000 };
  switch (command) {
    case "sessions": {
      const res = await clients.processing.listSessions({ pageSize: 100 }, opts);
      printTable(
        ["id", "workflow", "state", "step", "progress", "error"],
        res.sessions.map((s) => [
          s.id,
          s.workflowId,
          SessionState[s.state].toLowerCase(),
          s.denoiseTotal ? `${s.denoiseStep}/${s.denoiseTotal}` : "",
          `${Math.round(s.progress * 100)}%`,
          s.error,
        ]),
      );
      return 0;
    }
    case "session": {
      const { session } = await clients.processing.getSession({ sessionId: id }, opts);
      // Proto JSON: enum names, 64-bit numbers as strings, as every other Connect JSON client sees it.
      process.stdout.write(`${session ? JSON.stringify(toJson(SessionSchema, session), null, 2) : "{}"}\n`);
      return 0;
    }
    case "delete":
      await clients.processing.deleteSession({ sessionId: id }, opts);
      process.stdout.write(`deleted ${id}\n`);
      return 0;
    case "watch": {
      const last = await watch(clients, id, values.out);
      process.stderr.write(`session ${id}: ${describeEnd(last)}\n`);
      return 0;
    }
    default: {
      const action = ACTIONS[command];
      if (action === undefined) throw new Error(`unknown command ${command}`);
      let { session } = await clients.processing.controlSession({ sessionId: id, action }, opts);
      // A pause lands at the next denoising step boundary: say where it landed, not where it was asked.
      if (action === SessionAction.PAUSE && session?.state === SessionState.RUNNING)
        session = (await settled(clients, id, PAUSE_WAIT_MS)) ?? session;
      process.stdout.write(
        `${id}: ${describeEnd(session)}${session?.denoiseTotal ? ` at step ${session.denoiseStep}/${session.denoiseTotal}` : ""}\n`,
      );
      return 0;
    }
  }
}

/**
 * Follows a session to its end, saving each image as it is stored, then any stored before the watch began
 * (all of them for a session that had already finished). Image i of the session is `<out>/<id>-<i>.png`.
 */
async function watch(
  clients: ReturnType<typeof orchestratorClients>,
  id: string,
  out: string,
): Promise<Session | undefined> {
  const bar = new ProgressBar();
  const saved = new Set<string>();
  const save = async (session: Session, artifactId: string) => {
    if (saved.has(artifactId)) return;
    saved.add(artifactId);
    const index = session.artifactIds.indexOf(artifactId);
    const path = `${out}/${id}-${index < 0 ? saved.size - 1 : index}.png`;
    await saveArtifact(clients, artifactId, path);
    process.stdout.write(`${path}\n`);
  };
  let last: Session | undefined;
  for await (const { event } of clients.processing.watchSession({ sessionId: id })) {
    last = event?.session ?? last;
    if (event?.kind === SessionEventKind.PROGRESS && last)
      bar.update(last.currentStep, last.denoiseStep, last.denoiseTotal);
    if (event?.kind === SessionEventKind.ARTIFACT && event.artifactId && last) {
      bar.done();
      await save(last, event.artifactId);
    }
  }
  bar.done();
  for (const artifactId of last?.artifactIds ?? []) if (last) await save(last, artifactId);
  return last;
}
