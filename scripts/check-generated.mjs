#!/usr/bin/env node
// Regenerates the contracts from proto/ into a temporary directory and fails when they differ from the
// committed code: generated code must be reproducible from proto/ alone.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const committed = "packages/contracts/src";
const out = mkdtempSync(join(tmpdir(), "dmesh-gen-"));
try {
  execFileSync("node_modules/.bin/buf", ["generate", "--output", out], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const fresh = join(out, committed);
  const list = (dir) =>
    readdirSync(dir, { recursive: true })
      .map(String)
      .filter((f) => statSync(join(dir, f)).isFile())
      .sort();
  const a = list(committed);
  const b = list(fresh);
  const problems = [
    ...a.filter((f) => !b.includes(f)).map((f) => `${f}: committed but not generated`),
    ...b.filter((f) => !a.includes(f)).map((f) => `${f}: generated but not committed`),
    ...a
      .filter((f) => b.includes(f) && !readFileSync(join(committed, f)).equals(readFileSync(join(fresh, f))))
      .map((f) => `${f}: differs`),
  ];
  if (problems.length > 0) {
    console.error(
      `generated code is out of date with proto/ (run npm run proto:gen):\n  ${problems.join("\n  ")}`,
    );
    process.exit(1);
  }
  console.log(`generated code matches proto/ (${a.length} files in ${relative(".", committed)})`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
