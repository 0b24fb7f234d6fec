#!/usr/bin/env node
// The file npm links as `dmesh-tiny-model` at install time, when dist/ does not exist yet (npm skips a missing bin).
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("dmesh-tiny-model: not built yet: run `npm run build` at the repository root\n");
  process.exit(1);
}
await import(main.href);
