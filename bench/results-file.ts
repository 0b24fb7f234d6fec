import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchResult } from "./bench-result.js";
import { formatTable } from "./report.js";

/** What a results file says about the run besides its figures. */
export interface BenchRun {
  readonly date: Date;
  readonly suites: readonly string[];
  readonly machine: string;
  readonly seconds: number;
  /** The commit measured ("abc1234", "+ changes" when the tree was not clean); undefined outside git. */
  readonly commit?: string;
}

/** The checkout's commit, short, and whether the tree had changes; undefined where git cannot say. */
export function currentCommit(cwd: string): string | undefined {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd, encoding: "utf8", stdio: "pipe" }).trim();
    const head = git("rev-parse", "--short", "HEAD");
    return git("status", "--porcelain", "--untracked-files=no") ? `${head} + changes` : head;
  } catch {
    return undefined;
  }
}

/** A run's results file: a few lines of markdown, the table as `npm run bench` printed it. */
export function formatResultsFile(run: BenchRun, results: readonly BenchResult[]): string {
  return [
    `# Bench run ${run.date.toISOString()}`,
    "",
    `- suites: ${run.suites.join(", ")} (\`node bench/dist/main.js ${run.suites.join(" ")}\`)`,
    `- commit: ${run.commit ?? "unknown"}`,
    `- machine: ${run.machine}`,
    `- took: ${run.seconds.toFixed(0)} s`,
    "",
    "```",
    formatTable(results),
    "```",
    "",
  ].join("\n");
}

/**
 * Writes the run's results into `dir` (bench/results/), one file per run named by its time and suites, so
 * figures are kept beside the code that made them instead of in READMEs. Returns the file's path.
 */
export function writeResultsFile(dir: string, run: BenchRun, results: readonly BenchResult[]): string {
  mkdirSync(dir, { recursive: true });
  const stamp = run.date.toISOString().slice(0, 19).replaceAll(":", "-");
  const path = join(dir, `${stamp}-${run.suites.join("-")}.md`);
  writeFileSync(path, formatResultsFile(run, results), { flag: "wx" });
  return path;
}
