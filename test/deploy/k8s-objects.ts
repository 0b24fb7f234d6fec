import type { K8sObject } from "./kubectl-render.js";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
type Json = any;

export interface PodWorkload {
  kind: string;
  name: string;
  /** `spec.template` of the workload. */
  template: Json;
  object: K8sObject;
}

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);

export function podWorkloads(objects: readonly K8sObject[]): PodWorkload[] {
  return objects
    .filter((o) => WORKLOAD_KINDS.has(o.kind))
    .map((o) => ({ kind: o.kind, name: o.metadata.name, template: o.spec.template, object: o }));
}

/** Every container of a pod spec, init containers included. */
export function allContainers(podSpec: Json): Json[] {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}

/** A label selector (`matchLabels` and `matchExpressions`) applied to labels; `{}` selects everything. */
export function selects(selector: Json, labels: Record<string, string>): boolean {
  const matchLabels: Record<string, string> = selector?.matchLabels ?? {};
  const expressions: Json[] = selector?.matchExpressions ?? [];
  return (
    Object.entries(matchLabels).every(([k, v]) => labels[k] === v) &&
    expressions.every((e) => {
      const has = e.key in labels;
      switch (e.operator) {
        case "In":
          return has && e.values.includes(labels[e.key]);
        case "NotIn":
          return !has || !e.values.includes(labels[e.key]);
        case "Exists":
          return has;
        case "DoesNotExist":
          return !has;
        default:
          throw new Error(`unknown selector operator ${e.operator}`);
      }
    })
  );
}

/**
 * The environment a container gets from the manifests: `envFrom` ConfigMaps, then `env` entries (which
 * win). A Secret's value cannot be read here: a `secretKeyRef` entry stands as `secret:<name>/<key>` (its
 * name is still checked); field references are refused rather than skipped.
 */
export function containerEnv(container: Json, objects: readonly K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (!name) throw new Error(`container ${container.name}: only configMapRef envFrom is checked`);
    const configMap = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name);
    if (!configMap) throw new Error(`container ${container.name}: ConfigMap ${name} is not rendered`);
    for (const [key, value] of Object.entries<string>(configMap.data ?? {}))
      env[`${source.prefix ?? ""}${key}`] = value;
  }
  for (const entry of container.env ?? []) {
    const secret = entry.valueFrom?.secretKeyRef;
    if (secret) {
      env[entry.name] = `secret:${secret.name}/${secret.key}`;
      continue;
    }
    if (entry.valueFrom) throw new Error(`container ${container.name}: ${entry.name} uses valueFrom`);
    env[entry.name] = entry.value ?? "";
  }
  return env;
}

/** Quantities as numbers (cores, bytes), for comparing requests with limits. */
export function quantity(value: string | number): number {
  if (typeof value === "number") return value;
  const match = /^([\d.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/.exec(value);
  if (!match) throw new Error(`not a quantity: ${value}`);
  const units: Record<string, number> = {
    m: 1e-3,
    k: 1e3,
    Ki: 1024,
    M: 1e6,
    Mi: 1024 ** 2,
    G: 1e9,
    Gi: 1024 ** 3,
    T: 1e12,
    Ti: 1024 ** 4,
  };
  return Number(match[1]) * (match[2] ? (units[match[2]] ?? 1) : 1);
}
