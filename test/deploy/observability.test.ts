import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { prometheusMissing } from "../support/prometheus.js";
import { containerEnv, podWorkloads, selects } from "./k8s-objects.js";
import { findKubectl, type K8sObject, renderKustomization } from "./kubectl-render.js";
import { MESH_SERVICES, REPO_ROOT } from "./mesh-services.js";

const kubectl = findKubectl();
const promtoolMissing = prometheusMissing();
const COMPONENT = join(REPO_ROOT, "deploy/components/observability");
const TITLE = kubectl
  ? "observability in deploy/overlays/prod"
  : "observability in deploy/overlays/prod (skipped: kubectl not found on PATH)";

/**
 * Every metric name the services define (a "dmesh_…" string in the metrics modules, with a histogram's
 * series), the gRPC families, and Prometheus' own `up`.
 */
function definedMetrics(): Set<string> {
  const names = new Set<string>(["up"]);
  for (const side of ["server", "client"]) {
    for (const family of ["started_total", "handled_total", "msg_received_total", "msg_sent_total"])
      names.add(`grpc_${side}_${family}`);
    for (const suffix of ["bucket", "sum", "count"]) names.add(`grpc_${side}_handling_seconds_${suffix}`);
  }
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const path = join(dir, f);
      return statSync(path).isDirectory() ? walk(path) : path.endsWith("-metrics.ts") ? [path] : [];
    });
  const sources = [
    ...MESH_SERVICES.flatMap((s) => walk(join(REPO_ROOT, "services", s.name, "src"))),
    ...walk(join(REPO_ROOT, "packages/runtime/src")),
  ];
  for (const file of sources) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/"(dmesh_[a-z0-9_]+)"/g)) {
      names.add(m[1] as string);
      for (const suffix of ["bucket", "sum", "count"]) names.add(`${m[1]}_${suffix}`);
    }
  }
  return names;
}

/** Metric names a PromQL expression reads. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(dmesh_[a-z0-9_]+|grpc_(?:server|client)_[a-z0-9_]+)\b|\b(up)\{/g)].map(
    (m) => (m[1] ?? m[2]) as string,
  );
}

describe.skipIf(!kubectl)(TITLE, () => {
  const objects: K8sObject[] = kubectl
    ? renderKustomization(kubectl, join(REPO_ROOT, "deploy/overlays/prod"))
    : [];
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const workloads = podWorkloads(objects);
  const rules = of("PrometheusRule").flatMap((r) => r.spec.groups);
  const dashboardMap = of("ConfigMap").find((c) => c.metadata.labels?.grafana_dashboard === "1");
  const dashboard = JSON.parse(dashboardMap?.data?.["dmesh.json"] ?? "{}") as {
    panels: { type: string; title: string; targets?: { expr: string }[] }[];
  };
  const adapter = readFileSync(join(COMPONENT, "prometheus-adapter/values.yaml"), "utf8");
  const defined = definedMetrics();

  it("scrapes every service's METRICS_PORT through one ServiceMonitor, each pod once, the job its name", () => {
    const [monitor, ...others] = of("ServiceMonitor");
    expect(others).toEqual([]);
    expect(monitor?.spec.jobLabel).toBe("app.kubernetes.io/name");
    const endpoint = monitor?.spec.endpoints?.[0];
    expect(endpoint?.path).toBe("/metrics");
    const scraped = of("Service").filter(
      (s) =>
        selects(monitor?.spec.selector, s.metadata.labels ?? {}) &&
        s.spec.ports.some((p: { name: string }) => p.name === endpoint?.port),
    );
    for (const service of MESH_SERVICES) {
      const workload = workloads.find((w) => w.name === service.name);
      const container = workload?.template.spec.containers.find(
        (c: { name: string }) => c.name === service.name,
      );
      const config = loadConfig(service.settings, containerEnv(container, objects), []);
      const mine = scraped.filter((s) =>
        selects({ matchLabels: s.spec.selector }, workload?.template.metadata.labels ?? {}),
      );
      expect(
        mine.map((s) => s.metadata.name),
        service.name,
      ).toHaveLength(1);
      const svc = mine[0] as K8sObject;
      // Headless: the ServiceMonitor gets every pod, not one behind a virtual IP.
      expect(svc.spec.clusterIP, service.name).toBe("None");
      expect(svc.metadata.labels?.["app.kubernetes.io/name"], `${service.name} job`).toBe(service.name);
      const port = svc.spec.ports.find((p: { name: string }) => p.name === endpoint?.port);
      const containerPort = container.ports.find((p: { name: string }) => p.name === port.targetPort);
      expect(config.metricsPort, service.name).toBeGreaterThan(0);
      expect(containerPort?.containerPort, service.name).toBe(config.metricsPort);
    }
  });

  it("scales inference on its queue depth, a metric it reports, served by prometheus-adapter", () => {
    const hpa = of("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === "inference");
    const [metric, ...more] = hpa?.spec.metrics ?? [];
    expect(more).toEqual([]);
    expect(metric?.type).toBe("Pods");
    const name = metric?.pods.metric.name as string;
    expect(Number(metric?.pods.target.averageValue)).toBeGreaterThan(0);
    expect(adapter).toContain(`as: "${name}"`);
    const series = /seriesQuery: '([a-z0-9_]+)\{/.exec(adapter)?.[1] ?? "";
    expect(defined, `the adapter's series ${series}`).toContain(series);
    expect(series).toBe("dmesh_inference_queue_depth");
  });

  it("scales the orchestrator on each replica's sessions in flight, a metric it reports, served by prometheus-adapter", () => {
    const hpa = of("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === "orchestrator");
    const [metric, ...more] = hpa?.spec.metrics ?? [];
    expect(more).toEqual([]);
    expect(metric?.type).toBe("Pods");
    const name = metric?.pods.metric.name as string;
    expect(name).toBe("dmesh_orchestrator_sessions_in_flight");
    expect(defined).toContain(name);
    expect(Number(metric?.pods.target.averageValue)).toBeGreaterThan(0);
    expect(adapter).toContain(`seriesQuery: '${name}{`);
    expect(adapter).toContain(`as: "${name}"`);
  });

  it("alerts on a replica down, a growing queue and the error ratio, over metrics the services define", () => {
    const alerts = rules.flatMap((g: { rules: { alert: string; expr: string }[] }) => g.rules);
    expect(alerts.map((a: { alert: string }) => a.alert).sort()).toEqual([
      "DmeshErrorRatioHigh",
      "DmeshInferenceQueueGrowing",
      "DmeshReplicaDown",
    ]);
    for (const alert of alerts) {
      expect(metricsIn(alert.expr).length, alert.alert).toBeGreaterThan(0);
      for (const name of metricsIn(alert.expr)) expect(defined, `${alert.alert}: ${name}`).toContain(name);
    }
    const jobs = /job=~"([^"]+)"/
      .exec(alerts[0]?.expr ?? "")?.[1]
      ?.split("|")
      .sort();
    expect(jobs).toEqual(MESH_SERVICES.map((s) => s.name).sort());
  });

  it("ships a Grafana dashboard whose every panel queries metrics the services define", () => {
    const panels = dashboard.panels.filter((p) => p.type !== "row");
    expect(panels.length).toBeGreaterThan(10);
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets ?? []) {
        expect(metricsIn(expr).length, `${panel.title}: ${expr}`).toBeGreaterThan(0);
        for (const name of metricsIn(expr)) expect(defined, `${panel.title}: ${name}`).toContain(name);
      }
    }
  });

  it.skipIf(promtoolMissing)(
    `promtool accepts the alert rules and every dashboard query${promtoolMissing ? ` (skipped: ${promtoolMissing})` : ""}`,
    () => {
      const dir = mkdtempSync(join(tmpdir(), "dmesh-rules-"));
      try {
        const queries = dashboard.panels
          .flatMap((p) => p.targets ?? [])
          .map((t, i) => ({ record: `dashboard:query_${i}`, expr: t.expr }));
        // JSON is YAML: promtool reads both files as rule files.
        writeFileSync(join(dir, "alerts.yaml"), JSON.stringify({ groups: rules }));
        writeFileSync(
          join(dir, "dashboard.yaml"),
          JSON.stringify({ groups: [{ name: "dashboard", rules: queries }] }),
        );
        const out = execFileSync(
          "promtool",
          ["check", "rules", join(dir, "alerts.yaml"), join(dir, "dashboard.yaml")],
          {
            encoding: "utf8",
          },
        );
        expect(out).toMatch(/SUCCESS: 3 rules found/);
        expect(out).toMatch(new RegExp(`SUCCESS: ${queries.length} rules found`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(promtoolMissing)(
    `fires each alert on the series that should fire it, and not before (promtool test rules)${promtoolMissing ? ` (skipped: ${promtoolMissing})` : ""}`,
    () => {
      const dir = mkdtempSync(join(tmpdir(), "dmesh-rules-"));
      try {
        writeFileSync(join(dir, "alerts.yaml"), JSON.stringify({ groups: rules }));
        const labels = { namespace: "dmesh", job: "inference" };
        const tests = {
          rule_files: ["alerts.yaml"],
          evaluation_interval: "1m",
          tests: [
            {
              interval: "1m",
              input_series: [
                // An inference pod stops answering scrapes at minute 1; a postprocess pod keeps answering.
                { series: 'up{job="inference",instance="10.0.0.1:9464"}', values: "1 0 0 0 0 0" },
                { series: 'up{job="postprocess",instance="10.0.0.2:9464"}', values: "1 1 1 1 1 1" },
                // The queue grows by one generation a minute.
                {
                  series: 'dmesh_inference_queue_depth{namespace="dmesh",job="inference",pod="p"}',
                  values: "0+1x30",
                },
                // 10% of calls fail with INTERNAL, against 2% with INVALID_ARGUMENT that are the callers' own.
                {
                  series:
                    'grpc_server_handled_total{namespace="dmesh",job="inference",grpc_service="s",grpc_code="Internal"}',
                  values: "0+60x30",
                },
                {
                  series:
                    'grpc_server_handled_total{namespace="dmesh",job="inference",grpc_service="s",grpc_code="OK"}',
                  values: "0+528x30",
                },
                {
                  series:
                    'grpc_server_handled_total{namespace="dmesh",job="inference",grpc_service="s",grpc_code="InvalidArgument"}',
                  values: "0+12x30",
                },
              ],
              alert_rule_test: [
                { eval_time: "2m", alertname: "DmeshReplicaDown", exp_alerts: [] },
                {
                  eval_time: "4m",
                  alertname: "DmeshReplicaDown",
                  exp_alerts: [
                    {
                      exp_labels: { severity: "critical", job: "inference", instance: "10.0.0.1:9464" },
                      exp_annotations: {
                        summary: "dmesh inference replica down",
                        description:
                          "inference at 10.0.0.1:9464 has answered no metrics scrape for 2 minutes.",
                      },
                    },
                  ],
                },
                { eval_time: "8m", alertname: "DmeshInferenceQueueGrowing", exp_alerts: [] },
                {
                  eval_time: "25m",
                  alertname: "DmeshInferenceQueueGrowing",
                  exp_alerts: [
                    {
                      exp_labels: { severity: "warning", namespace: "dmesh" },
                      exp_annotations: {
                        summary: "dmesh inference queue growing",
                        description: "25 generations wait in dmesh and the queue has grown for 10 minutes.",
                      },
                    },
                  ],
                },
                { eval_time: "10m", alertname: "DmeshErrorRatioHigh", exp_alerts: [] },
                {
                  eval_time: "20m",
                  alertname: "DmeshErrorRatioHigh",
                  exp_alerts: [
                    {
                      exp_labels: { severity: "warning", ...labels, grpc_service: "s" },
                      exp_annotations: {
                        summary: "dmesh s failing calls",
                        description: "10% of s's calls failed on the server's account over 5 minutes.",
                      },
                    },
                  ],
                },
              ],
            },
          ],
        };
        writeFileSync(join(dir, "alerts-test.yaml"), JSON.stringify(tests));
        const result = spawnSync("promtool", ["test", "rules", join(dir, "alerts-test.yaml")], {
          encoding: "utf8",
        });
        expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
