/** `npm run bench`: runs every suite, prints one table and writes bench-results.json. */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { benchAdapters } from "./adapters.js";
import type { BenchResult } from "./bench-result.js";
import { benchInferencePipeline } from "./inference-pipeline.js";
import { benchMeshOverhead } from "./mesh/image-overhead.js";
import { benchObservability } from "./observability/observability-suite.js";
import { benchOrchestratorOverhead } from "./orchestrator-overhead.js";
import { benchPostprocess } from "./postprocess/postprocess-throughput.js";
import { formatTable } from "./report.js";
import { benchTransport } from "./transport/transport-suite.js";

const SUITES: Record<string, () => Promise<BenchResult[]>> = {
  transport: benchTransport,
  mesh: benchMeshOverhead,
  postprocess: benchPostprocess,
  orchestrator: benchOrchestratorOverhead,
  inference: benchInferencePipeline,
  observability: benchObservability,
  adapters: benchAdapters,
};

const only = process.argv.slice(2);
const results: BenchResult[] = [];
const started = performance.now();
for (const [name, run] of Object.entries(SUITES)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const suiteStarted = performance.now();
  process.stderr.write(`bench: ${name}…\n`);
  results.push(...(await run()));
  process.stderr.write(`bench: ${name} took ${((performance.now() - suiteStarted) / 1000).toFixed(1)} s\n`);
}
process.stdout.write(`${formatTable(results)}\n`);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}`;
process.stdout.write(`\n${machine}; ${((performance.now() - started) / 1000).toFixed(0)} s in all\n`);
writeFileSync(
  "bench-results.json",
  `${JSON.stringify({ machine, date: new Date().toISOString(), results }, null, 2)}\n`,
);
