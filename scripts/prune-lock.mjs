#!/usr/bin/env node
// The registry this project installs from serves only the platform packages it can use (biome's and buf's
// darwin/win32/armv7 builds answer 404), so npm writes a lock that names optional dependencies it could not
// resolve, and `npm ci` then refuses that lock. This drops those dangling names from package-lock.json.
// Run it after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from "node:fs";

const path = "package-lock.json";
const lock = JSON.parse(readFileSync(path, "utf8"));
let dropped = 0;
for (const [key, entry] of Object.entries(lock.packages)) {
  if (!entry.optionalDependencies) continue;
  const base = key.slice(0, key.lastIndexOf("node_modules/") + "node_modules/".length) || "node_modules/";
  for (const name of Object.keys(entry.optionalDependencies)) {
    const resolved =
      lock.packages[`${key}/node_modules/${name}`] ??
      lock.packages[`${base}${name}`] ??
      lock.packages[`node_modules/${name}`];
    if (!resolved) {
      delete entry.optionalDependencies[name];
      dropped++;
    }
  }
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: dropped ${dropped} optional dependencies the registry does not serve`);
