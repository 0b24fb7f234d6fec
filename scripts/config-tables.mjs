#!/usr/bin/env node
// Prints the configuration tables the README shows: the settings every service shares, then each service's own,
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

if (import.meta.url === `file://${process.argv[1]}`) console.log(await configTables());
