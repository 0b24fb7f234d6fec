/**
 * `npm run bench`: runs every suite (or those named), prints one table, writes it to a new file in
 * bench/results/ (commit it when the figures matter) and the raw figures to bench-results.json.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { benchAdapters } from "./adapters.js";
import type { BenchResult } from "./bench-result.js";
import { benchInferencePipeline } from "./inference-pipeline.js";
import { benchInferenceResponsiveness } from "./inference-responsiveness.js";
import { benchMeshOverhead } from "./mesh/image-overhead.js";
import { benchObservability } from "./observability/observability-suite.js";
import { benchOrchestratorOverhead } from "./orchestrator-overhead.js";
import { benchPostprocess } from "./postprocess/postprocess-throughput.js";
import { formatTable } from "./report.js";
import { currentCommit, writeResultsFile } from "./results-file.js";
import { benchTransport } from "./transport/transport-suite.js";

const SUITES: Record<string, () => Promise<BenchResult[]>> = {
  transport: benchTransport,
  mesh: benchMeshOverhead,
  postprocess: benchPostprocess,
  orchestrator: benchOrchestratorOverhead,
  inference: benchInferencePipeline,
  responsiveness: benchInferenceResponsiveness,
  observability: benchObservability,
  adapters: benchAdapters,
};

const only = process.argv.slice(2);
const unknown = only.filter((name) => !(name in SUITES));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: no suite ${unknown.join(", ")}; the suites: ${Object.keys(SUITES).join(", ")}\n`,
  );
  process.exit(2);
}
const suites =
  only.length > 0 ? Object.keys(SUITES).filter((name) => only.includes(name)) : Object.keys(SUITES);
const results: BenchResult[] = [];
const date = new Date();
const started = performance.now();
for (const name of suites) {
  const run = SUITES[name] as () => Promise<BenchResult[]>;
  const suiteStarted = performance.now();
  process.stderr.write(`bench: ${name}…\n`);
  results.push(...(await run()));
  process.stderr.write(`bench: ${name} took ${((performance.now() - suiteStarted) / 1000).toFixed(1)} s\n`);
}
process.stdout.write(`${formatTable(results)}\n`);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}`;
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`\n${machine}; ${seconds.toFixed(0)} s in all\n`);
const root = fileURLToPath(new URL("../..", import.meta.url)); // bench/dist/main.js -> the checkout
const file = writeResultsFile(
  join(root, "bench", "results"),
  {
    date,
    suites,
    machine,
    seconds,
    commit: currentCommit(root),
  },
  results,
);
process.stdout.write(`written to ${relative(process.cwd(), file)}\n`);
writeFileSync(
  "bench-results.json",
  `${JSON.stringify({ machine, date: date.toISOString(), results }, null, 2)}\n`,
);
