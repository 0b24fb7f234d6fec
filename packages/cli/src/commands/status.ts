import { join } from "node:path";
import { parseArgs } from "node:util";
import { API_KEY_OPTION, DEFAULT_URL, orchestratorClients } from "../clients.js";
import { readSupervisorState, SUPERVISOR_STATE_FILE } from "../supervisor-state.js";

export const STATUS_HELP = `dmesh status [--url ${DEFAULT_URL}] [--data .dmesh]
  Health, latency, warm models, queue and device memory of every instructor behind the orchestrator; for a
  mesh that \`dmesh up --data DIR\` runs, each service's process and restarts.`;

export async function status(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: "string", default: DEFAULT_URL },
      data: { type: "string", default: ".dmesh" },
      ...API_KEY_OPTION,
    },
  });
  const res = await orchestratorClients(values.url, values["api-key"]).mesh.getMeshStatus(
    {},
    { timeoutMs: 10_000 },
  );
  const rows = res.instructors.map((i) => [
    i.domain,
    i.address,
    i.health,
    `${i.latencyMs.toFixed(1)} ms`,
    i.domain === "inference"
      ? `queue ${i.queueRunning}+${i.queueQueued}, warm: ${i.warmModels.join(",") || "-"}`
      : "",
    i.deviceMemoryTotalBytes > 0n
      ? `mem ${gib(i.deviceMemoryFreeBytes)}/${gib(i.deviceMemoryTotalBytes)} GiB free`
      : "",
    i.error,
  ]);
  printTable(["domain", "address", "health", "latency", "load", "device", "error"], rows);
  process.stdout.write(`sessions: ${res.sessionsRunning} running, ${res.sessionsQueued} queued\n`);
  const supervised = readSupervisorState(join(values.data, SUPERVISOR_STATE_FILE), values.url);
  if (supervised) {
    process.stdout.write(`\nservices of dmesh up (pid ${supervised.pid}):\n`);
    printTable(
      ["service", "pid", "restarts", "last exit"],
      Object.entries(supervised.services).map(([name, s]) => [
        name,
        s.pid ? String(s.pid) : "starting",
        String(s.restarts),
        s.lastExit,
      ]),
    );
  }
  return res.instructors.every((i) => i.health === "SERVING") ? 0 : 1;
}

function gib(bytes: bigint): string {
  return (Number(bytes) / 2 ** 30).toFixed(1);
}

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => cell.padEnd(widths[c] ?? 0))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${[line(header), ...rows.map(line)].join("\n")}\n`);
}
