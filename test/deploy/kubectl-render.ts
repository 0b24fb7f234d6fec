import { execFileSync, spawnSync } from "node:child_process";

/** A Kubernetes object as rendered: only the fields every object has are typed. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
  [field: string]: any;
}

/** The kubectl on PATH, or undefined: the manifest tests skip without it. */
export function findKubectl(): string | undefined {
  const probe = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8", timeout: 10_000 });
  return probe.status === 0 ? "kubectl" : undefined;
}

/**
 * Renders a kustomization as objects. kubectl prints kustomize output only as YAML; an empty local merge
 * patch (`kubectl patch --local`, no cluster needed) reprints the same objects as JSON, so no YAML parser
 * is needed and the objects are exactly what `kubectl apply -k` would send.
 */
export function renderKustomization(kubectl: string, dir: string): K8sObject[] {
  const yaml = execFileSync(kubectl, ["kustomize", dir], { encoding: "utf8", timeout: 30_000 });
  const json = execFileSync(
    kubectl,
    ["patch", "--local", "-f", "-", "--type", "merge", "-p", "{}", "-o", "json"],
    {
      input: yaml,
      encoding: "utf8",
      timeout: 30_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return parseJsonStream(json).flatMap((o) => (o.kind === "List" ? (o.items as K8sObject[]) : [o]));
}

/** Splits concatenated JSON documents (kubectl prints one per object) and parses each. */
export function parseJsonStream(text: string): K8sObject[] {
  const docs: K8sObject[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}" && --depth === 0) {
      docs.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  if (depth !== 0) throw new Error("kubectl output ends inside a JSON document");
  return docs;
}
