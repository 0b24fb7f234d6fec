import { join } from "node:path";
import { loadConfig } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { containerEnv, podWorkloads, selects } from "./k8s-objects.js";
import { findKubectl, type K8sObject, renderKustomization } from "./kubectl-render.js";
import { MESH_SERVICES, REPO_ROOT } from "./mesh-services.js";

const kubectl = findKubectl();
const TITLE = kubectl
  ? "network policies in deploy/overlays/%s"
  : "network policies in deploy/overlays/%s (skipped: kubectl not found on PATH)";
const DOOR = "orchestrator";

describe.skipIf(!kubectl).each(["dev", "prod"])(TITLE, (overlay) => {
  const objects: K8sObject[] = kubectl
    ? renderKustomization(kubectl, join(REPO_ROOT, "deploy/overlays", overlay))
    : [];
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  const pods = podWorkloads(objects).map((w) => ({ name: w.name, labels: w.template.metadata.labels, w }));
  const door = pods.find((p) => p.name === DOOR);
  const policiesFor = (labels: Record<string, string>, type: "Ingress" | "Egress") =>
    policies.filter((p) => p.spec.policyTypes?.includes(type) && selects(p.spec.podSelector, labels));
  const configOf = (name: string) => {
    const service = MESH_SERVICES.find((s) => s.name === name);
    const container = pods.find((p) => p.name === name)?.w.template.spec.containers[0];
    return loadConfig(service?.settings ?? {}, containerEnv(container, objects), []);
  };
  const portOf = (name: string) => configOf(name).port as number;
  // Rules that admit only a pod's METRICS_PORT (the observability component's scrapers) are checked apart.
  const isMetricsRule = (name: string, rule: { ports?: { port: number }[] }) => {
    const metricsPort = configOf(name).metricsPort as number;
    return metricsPort >= 0 && (rule.ports ?? []).every((p) => p.port === metricsPort);
  };
  const serviceRules = (name: string, labels: Record<string, string>) =>
    policiesFor(labels, "Ingress")
      .flatMap((p) => p.spec.ingress ?? [])
      .filter((r) => !isMetricsRule(name, r));

  it("isolates every pod for ingress and egress (a policy selecting it denies what none allows)", () => {
    expect(pods).toHaveLength(MESH_SERVICES.length);
    for (const pod of pods) {
      expect(policiesFor(pod.labels, "Ingress").length, `${pod.name} ingress`).toBeGreaterThan(0);
      expect(policiesFor(pod.labels, "Egress").length, `${pod.name} egress`).toBeGreaterThan(0);
    }
  });

  it("exposes only the orchestrator's port, from anywhere", () => {
    const rules = serviceRules(DOOR, door?.labels ?? {});
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.ports.map((p: { port: number }) => p.port)).toEqual([portOf(DOOR)]);
  });

  it("lets only the orchestrator reach each domain service, on that service's port only", () => {
    for (const pod of pods.filter((p) => p.name !== DOOR)) {
      const rules = serviceRules(pod.name, pod.labels);
      expect(rules.length, `${pod.name} is reachable at all`).toBeGreaterThan(0);
      for (const rule of rules) {
        expect(rule.from?.length, `${pod.name}: a rule without 'from' admits everyone`).toBeGreaterThan(0);
        for (const peer of rule.from) {
          expect(peer.ipBlock, `${pod.name}: no address ranges`).toBeUndefined();
          expect(peer.namespaceSelector, `${pod.name}: same namespace only`).toBeUndefined();
          expect(selects(peer.podSelector, door?.labels ?? {}), `${pod.name} admits the orchestrator`).toBe(
            true,
          );
          for (const other of pods.filter((p) => p.name !== DOOR)) {
            expect(selects(peer.podSelector, other.labels), `${pod.name} admits ${other.name}`).toBe(false);
          }
        }
        expect(rule.ports.map((p: { port: number }) => p.port)).toEqual([portOf(pod.name)]);
      }
    }
  });

  it("lets scrapers reach the metrics port alone, from the monitoring namespace's Prometheus only", () => {
    for (const pod of pods) {
      const metricsPort = configOf(pod.name).metricsPort as number;
      const rules = policiesFor(pod.labels, "Ingress")
        .flatMap((p) => p.spec.ingress ?? [])
        .filter((r) => isMetricsRule(pod.name, r));
      if (metricsPort < 0) {
        expect(rules, `${pod.name} serves no metrics port`).toEqual([]);
        continue;
      }
      expect(rules.length, `${pod.name}: metrics reachable`).toBeGreaterThan(0);
      for (const rule of rules) {
        expect(rule.ports).toEqual([{ port: metricsPort, protocol: "TCP" }]);
        for (const peer of rule.from ?? [undefined]) {
          expect(peer?.namespaceSelector?.matchLabels, `${pod.name}: scrapers' namespace`).toEqual({
            "kubernetes.io/metadata.name": "monitoring",
          });
          expect(peer?.podSelector?.matchLabels, `${pod.name}: Prometheus pods only`).toEqual({
            "app.kubernetes.io/name": "prometheus",
          });
        }
      }
    }
  });

  it("lets only the orchestrator open connections: to each domain's port and to cluster DNS", () => {
    for (const pod of pods.filter((p) => p.name !== DOOR)) {
      expect(
        policiesFor(pod.labels, "Egress").flatMap((p) => p.spec.egress ?? []),
        pod.name,
      ).toEqual([]);
    }
    const rules = policiesFor(door?.labels ?? {}, "Egress").flatMap((p) => p.spec.egress ?? []);
    for (const pod of pods.filter((p) => p.name !== DOOR)) {
      const allowed = rules.some(
        (r) =>
          r.to?.some((peer: K8sObject) => !peer.namespaceSelector && selects(peer.podSelector, pod.labels)) &&
          r.ports.some((p: { port: number }) => p.port === portOf(pod.name)),
      );
      expect(allowed, `orchestrator reaches ${pod.name}`).toBe(true);
    }
    const dns = rules.filter((r) => r.ports.every((p: { port: number }) => p.port === 53));
    expect(dns.flatMap((r) => r.ports.map((p: { protocol: string }) => p.protocol)).sort()).toEqual([
      "TCP",
      "UDP",
    ]);
    for (const rule of rules) expect(rule.to?.length, "no egress rule open to everything").toBeGreaterThan(0);
  });
});
