#!/bin/sh
# Assembles a runtime tree under OUT for the given workspaces: their production dependencies only
# (installed fresh from the lockfile, so no dev or sibling-service packages), plus the package.json and
# compiled dist/ of every workspace package it links to. The runtime image copies OUT as /app unchanged,
# so the workspace symlinks in node_modules keep pointing at ../../packages/<name>.
# Usage (in the build stage, from the repository root, after `tsc -b`):
#   assemble-workspace.sh OUT WORKSPACE...     e.g. assemble-workspace.sh /out services/inference
set -eu
out="$1"
shift
src="$(pwd)"
workspaces=""
for w in "$@"; do workspaces="$workspaces --workspace $w"; done

mkdir -p "$out"
cp package.json package-lock.json .npmrc "$out/"
for manifest in packages/*/package.json services/*/package.json; do
  mkdir -p "$out/$(dirname "$manifest")"
  cp "$manifest" "$out/$manifest"
done

cd "$out"
# shellcheck disable=SC2086 # one --workspace flag per word
npm ci --omit=dev $workspaces --no-audit --no-fund

# Keep the linked workspace packages (with their build output); drop the other manifests.
linked=""
for link in node_modules/@dmesh/*; do
  linked="$linked $(readlink "$link" | sed 's|^\.\./\.\./||')"
done
for manifest in packages/*/package.json services/*/package.json; do
  dir="$(dirname "$manifest")"
  case " $linked " in
    *" $dir "*) cp -R "$src/$dir/dist" "$dir/dist" ;;
    *) rm -rf "$dir" ;;
  esac
done

# onnxruntime-node ships prebuilt binaries for every OS and CPU (~210 MB that never load here).
ort=node_modules/onnxruntime-node/bin/napi-v6
if [ -d "$ort" ]; then
  arch="$(node -p process.arch)"
  find "$ort" -mindepth 2 -maxdepth 2 -type d ! -path "$ort/linux/$arch" -exec rm -rf {} +
fi
