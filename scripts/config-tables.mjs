#!/usr/bin/env node
// Prints (or, with --write, updates in README.md) the configuration tables the README shows: the settings every service shares, then each service's own,
// straight from the settings objects the services load, so the documentation cannot drift from the code.
import { commonSettings, configTable } from "@dmesh/runtime";

const SERVICES = [
  ["orchestrator", "orchestratorSettings"],
  ["inference", "inferenceSettings"],
  ["postprocess", "postprocessSettings"],
  ["device", "deviceSettings"],
];

export async function configTables() {
  const out = [`Every service:\n\n${configTable(commonSettings)}`];
  for (const [name, exported] of SERVICES) {
    const settings = (await import(`@dmesh/${name}`))[exported];
    const own = Object.fromEntries(Object.entries(settings).filter(([key]) => !(key in commonSettings)));
    out.push(`${name}:\n\n${configTable(own)}`);
  }
  return out.join("\n\n");
}

// `--write` puts the tables into README.md between its config-tables markers.
if (import.meta.url === `file://${process.argv[1]}`) {
  const tables = await configTables();
  if (process.argv.includes("--write")) {
    const { readFileSync, writeFileSync } = await import("node:fs");
    const readme = readFileSync("README.md", "utf8");
    const updated = readme.replace(
      /(<!-- config-tables:begin -->\n)[\s\S]*?(\n<!-- config-tables:end -->)/,
      (_m, begin, end) => `${begin}${tables}${end}`,
    );
    writeFileSync("README.md", updated);
  } else console.log(tables);
}
