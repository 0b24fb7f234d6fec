import { join } from "node:path";
import { LIVENESS, loadConfig } from "@dmesh/runtime";
import { describe, expect, it } from "vitest";
import { stageEnv } from "./dockerfile.js";
import { allContainers, containerEnv, podWorkloads, quantity, selects } from "./k8s-objects.js";
import { findKubectl, type K8sObject, renderKustomization } from "./kubectl-render.js";
import { imageSource, MESH_SERVICES, meshService, REPO_ROOT } from "./mesh-services.js";

const kubectl = findKubectl();
// [overlay, runs inference on NVIDIA GPUs]
const OVERLAYS: [string, boolean][] = [
  ["dev", false],
  ["prod", true],
];
const TITLE = kubectl ? "deploy/overlays/%s" : "deploy/overlays/%s (skipped: kubectl not found on PATH)";
const GPU = "nvidia.com/gpu";

describe.skipIf(!kubectl).each(OVERLAYS)(TITLE, (overlay, gpu) => {
  const objects: K8sObject[] = kubectl
    ? renderKustomization(kubectl, join(REPO_ROOT, "deploy/overlays", overlay))
    : [];
  const workloads = podWorkloads(objects);
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const workload = (name: string) => workloads.find((w) => w.name === name);
  const namespace = of("Namespace")[0]?.metadata.name;

  it("renders one workload per service, device as a DaemonSet and the others as Deployments", () => {
    expect(workloads.map((w) => w.name).sort()).toEqual(MESH_SERVICES.map((s) => s.name).sort());
    expect(workload("orchestrator")?.kind).toBe("Deployment");
    expect(workload("inference")?.kind).toBe("Deployment");
    expect(workload("postprocess")?.kind).toBe("Deployment");
    expect(workload("device")?.kind).toBe("DaemonSet");
  });

  it("puts everything in one namespace that enforces the restricted Pod Security Standard", () => {
    expect(of("Namespace")).toHaveLength(1);
    expect(of("Namespace")[0]?.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    for (const o of objects.filter((o) => o.kind !== "Namespace"))
      expect(o.metadata.namespace, o.kind).toBe(namespace);
  });

  it("runs only images that a Dockerfile in the repository builds", () => {
    for (const w of workloads) {
      for (const c of allContainers(w.template.spec)) {
        expect(imageSource(c.image), `${w.name}/${c.name}: ${c.image}`).toBeDefined();
      }
    }
  });

  it("sets only variables in each service's settings table, with values the service accepts", () => {
    for (const w of workloads) {
      for (const c of allContainers(w.template.spec)) {
        const service = meshService(c.name);
        const env = containerEnv(c, objects);
        if (!service) {
          expect(env, `${w.name}/${c.name} is not a service container`).toEqual({});
          continue;
        }
        const known = Object.values(service.settings).map((s) => s.env);
        for (const key of Object.keys(env)) expect(known, `${c.name}: ${key}`).toContain(key);
        expect(() => loadConfig(service.settings, env, []), c.name).not.toThrow();
      }
    }
  });

  it("listens beyond loopback and addresses its peers by Service, never localhost", () => {
    for (const service of MESH_SERVICES) {
      const c = workload(service.name)?.template.spec.containers.find(
        (x: { name: string }) => x.name === service.name,
      );
      const config = loadConfig(service.settings, containerEnv(c, objects), []);
      expect(config.host, service.name).toBe("0.0.0.0");
      for (const value of Object.values(config).flat()) {
        expect(String(value), `${service.name} setting`).not.toMatch(/localhost|127\.0\.0\.1|\[::1\]/);
      }
    }
  });

  it("runs the device service on every node, reporting the node's RAM and cores rather than its own pod's", () => {
    const device = workload("device");
    expect(device?.kind).toBe("DaemonSet");
    const c = device?.template.spec.containers.find((x: { name: string }) => x.name === "device");
    const config = loadConfig(meshService("device")?.settings ?? {}, containerEnv(c, objects), []);
    expect(config.resourceScope).toBe("node");
    // The container's own procfs: its meminfo is the node's, as long as nothing is mounted over it.
    expect(config.procRoot).toBe("/proc");
    for (const m of c.volumeMounts ?? [])
      expect(String(m.mountPath), `${m.name} masks ${config.procRoot}`).not.toMatch(/^\/proc(\/|$)/);
  });

  it("points the orchestrator at headless Services whose ports reach each domain's pods", () => {
    const orchestrator = meshService("orchestrator");
    const c = workload("orchestrator")?.template.spec.containers[0];
    const config = loadConfig(orchestrator?.settings ?? {}, containerEnv(c, objects), []);
    const targets = { inferenceUrls: "inference", postprocessUrls: "postprocess", deviceUrls: "device" };
    for (const [key, domain] of Object.entries(targets)) {
      const urls = config[key] as string[];
      expect(urls, key).toHaveLength(1);
      const match = /^dns:\/\/\/([\w-]+):(\d+)$/.exec(urls[0] ?? "");
      expect(match, `${key} = ${urls[0]}`).not.toBeNull();
      const [, host, port] = match as RegExpExecArray;
      const service = of("Service").find((s) => s.metadata.name === host);
      expect(service?.spec.clusterIP, `${host} is headless: DNS returns every ready replica`).toBe("None");
      const servicePort = service?.spec.ports.find((p: { port: number }) => p.port === Number(port));
      expect(servicePort, `${host} has port ${port}`).toBeDefined();
      const pod = workload(domain)?.template;
      expect(selects(service?.spec.selector, pod.metadata.labels), `${host} selects ${domain} pods`).toBe(
        true,
      );
      const container = pod.spec.containers.find((x: { name: string }) => x.name === domain);
      const containerPort = container.ports.find(
        (p: { name: string; containerPort: number }) =>
          p.name === servicePort.targetPort || p.containerPort === servicePort.targetPort,
      );
      const domainConfig = loadConfig(
        meshService(domain)?.settings ?? {},
        containerEnv(container, objects),
        [],
      );
      expect(containerPort?.containerPort, `${host} targets the port ${domain} listens on`).toBe(
        domainConfig.port,
      );
    }
  });

  it("exposes the orchestrator through a Service on the port it listens on", () => {
    const door = of("Service").find((s) => s.metadata.name === "orchestrator");
    expect(door?.spec.clusterIP).not.toBe("None");
    expect(door?.spec.ports.map((p: { port: number }) => p.port)).toEqual([50051]);
  });

  it("probes the gRPC health service on the port each service listens on: liveness, readiness, startup", () => {
    for (const service of MESH_SERVICES) {
      const c = workload(service.name)?.template.spec.containers.find(
        (x: { name: string }) => x.name === service.name,
      );
      const { port } = loadConfig(service.settings, containerEnv(c, objects), []);
      expect(
        c.ports.map((p: { containerPort: number }) => p.containerPort),
        service.name,
      ).toContain(port);
      // The image declares the same port the manifests listen on.
      const image = imageSource(c.image);
      expect(stageEnv(image?.stage ?? { name: "", base: "", instructions: [] }).get("PORT")).toBe(
        String(port),
      );
      expect(c.livenessProbe?.grpc, `${service.name} liveness`).toEqual({ port, service: LIVENESS });
      expect(c.readinessProbe?.grpc, `${service.name} readiness`).toEqual({ port, service: "" });
      if (c.startupProbe)
        expect(c.startupProbe.grpc, `${service.name} startup`).toEqual({ port, service: "" });
    }
    // Loading a model can take minutes: a startup probe holds liveness off until the default model is warm.
    const inference = workload("inference")?.template.spec.containers[0];
    const { periodSeconds, failureThreshold } = inference.startupProbe;
    expect(periodSeconds * failureThreshold).toBeGreaterThanOrEqual(300);
  });

  it("gives every pod a termination grace period covering preStop plus the service's drain time", () => {
    for (const service of MESH_SERVICES) {
      const spec = workload(service.name)?.template.spec;
      const c = spec.containers.find((x: { name: string }) => x.name === service.name);
      const { shutdownGraceMs } = loadConfig(service.settings, containerEnv(c, objects), []);
      const command: string[] = c.lifecycle?.preStop?.exec?.command ?? [];
      const preStopMs = command[0] === "sleep" ? Number(command[1]) * 1000 : 0;
      expect(spec.terminationGracePeriodSeconds * 1000, service.name).toBeGreaterThan(
        shutdownGraceMs + preStopMs,
      );
    }
  });

  it("sets CPU and memory requests and limits on every container, requests within limits", () => {
    for (const w of workloads) {
      for (const c of allContainers(w.template.spec)) {
        for (const resource of ["cpu", "memory"]) {
          const request = c.resources?.requests?.[resource];
          const limit = c.resources?.limits?.[resource];
          expect(request, `${w.name}/${c.name} requests ${resource}`).toBeDefined();
          expect(limit, `${w.name}/${c.name} limits ${resource}`).toBeDefined();
          expect(quantity(request), `${w.name}/${c.name} ${resource}`).toBeLessThanOrEqual(quantity(limit));
        }
      }
    }
  });

  it("hardens every pod and container: non-root, no escalation, no capabilities, read-only root", () => {
    for (const w of workloads) {
      const spec = w.template.spec;
      expect(spec.securityContext?.runAsNonRoot, w.name).toBe(true);
      expect(spec.securityContext?.runAsUser, w.name).toBeGreaterThan(0);
      expect(spec.securityContext?.seccompProfile?.type, w.name).toBe("RuntimeDefault");
      expect(spec.automountServiceAccountToken, `${w.name} needs no API access`).toBe(false);
      expect(spec.hostNetwork ?? false, w.name).toBe(false);
      expect(spec.hostPID ?? false, w.name).toBe(false);
      for (const v of spec.volumes ?? []) expect(v.hostPath, `${w.name} volume ${v.name}`).toBeUndefined();
      for (const c of allContainers(spec)) {
        const at = `${w.name}/${c.name}`;
        expect(c.securityContext?.allowPrivilegeEscalation, at).toBe(false);
        expect(c.securityContext?.readOnlyRootFilesystem, at).toBe(true);
        expect(c.securityContext?.capabilities?.drop, at).toContain("ALL");
        expect(c.securityContext?.capabilities?.add ?? [], at).toEqual([]);
        expect(c.securityContext?.privileged ?? false, at).toBe(false);
      }
    }
  });

  it("mounts writable emptyDirs or volumes wherever a service writes (/tmp, DATA_DIR, MODELS_DIR)", () => {
    for (const service of MESH_SERVICES) {
      const w = workload(service.name);
      const spec = w?.template.spec;
      const c = spec.containers.find((x: { name: string }) => x.name === service.name);
      const mountAt = (path: string) =>
        c.volumeMounts?.find((m: { mountPath: string }) => m.mountPath === path);
      const tmp = mountAt("/tmp");
      expect(
        spec.volumes.find((v: { name: string }) => v.name === tmp?.name)?.emptyDir,
        `${service.name} /tmp`,
      ).toBeDefined();
      const config = loadConfig(service.settings, containerEnv(c, objects), []);
      if (service.name === "orchestrator") {
        const data = mountAt(String(config.dataDir));
        const claim = spec.volumes.find(
          (v: { name: string }) => v.name === data?.name,
        )?.persistentVolumeClaim;
        expect(
          of("PersistentVolumeClaim").map((p) => p.metadata.name),
          "DATA_DIR is a claim",
        ).toContain(claim?.claimName);
        expect(data?.readOnly ?? false).toBe(false);
      }
      if (service.name === "inference") {
        const models = mountAt(String(config.modelsDir));
        expect(models?.readOnly, "serving pods mount models read-only").toBe(true);
        const volume = spec.volumes.find((v: { name: string }) => v.name === models?.name);
        const claim = volume?.persistentVolumeClaim?.claimName;
        if (claim) expect(of("PersistentVolumeClaim").map((p) => p.metadata.name)).toContain(claim);
        else {
          // Without a models volume, an init container writes the tiny model into the emptyDir first.
          expect(volume?.emptyDir).toBeDefined();
          const init = spec.initContainers?.find((i: { volumeMounts?: { name: string }[] }) =>
            i.volumeMounts?.some((m) => m.name === models?.name),
          );
          expect(init?.command?.slice(0, 2)).toEqual(["node", "packages/tiny-model/dist/main.js"]);
          expect(init?.command?.[2]).toMatch(new RegExp(`^${config.modelsDir}/[\\w-]+$`));
        }
      }
    }
  });

  it(
    gpu
      ? "requests GPUs for inference only, on GPU nodes, with the CUDA image and provider"
      : "requests no GPU",
    () => {
      for (const w of workloads) {
        for (const c of allContainers(w.template.spec)) {
          const gpus = c.resources?.limits?.[GPU] ?? c.resources?.requests?.[GPU];
          if (gpu && w.name === "inference" && c.name === "inference") {
            expect(Number(gpus)).toBeGreaterThanOrEqual(1);
            expect(imageSource(c.image)?.stage.name).toBe("cuda");
            const config = loadConfig(meshService("inference")?.settings ?? {}, containerEnv(c, objects), []);
            expect(config.executionProviders).toEqual(["cuda", "cpu"]);
            const spec = w.template.spec;
            expect(Object.keys(spec.nodeSelector ?? {}).some((k) => k.startsWith("nvidia.com/"))).toBe(true);
            expect(spec.tolerations?.map((t: { key: string }) => t.key)).toContain(GPU);
          } else expect(gpus, `${w.name}/${c.name}`).toBeUndefined();
        }
      }
    },
  );

  it.runIf(gpu)(
    "autoscales inference, postprocess and the orchestrator, and keeps them through disruptions",
    () => {
      for (const name of ["inference", "postprocess", "orchestrator"]) {
        const hpa = of("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === name);
        expect(hpa?.spec.scaleTargetRef.kind, name).toBe(workload(name)?.kind);
        expect(hpa?.spec.minReplicas, `${name} min replicas`).toBeGreaterThanOrEqual(2);
        expect(hpa?.spec.maxReplicas).toBeGreaterThan(hpa?.spec.minReplicas);
        // A replicas field in the Deployment would fight the autoscaler on every apply.
        expect(workload(name)?.object.spec.replicas, `${name} leaves replicas to the HPA`).toBeUndefined();
        for (const metric of hpa?.spec.metrics ?? []) {
          // Custom metrics (inference's queue depth) are checked with the observability component.
          if (metric.type !== "Resource") continue;
          const resource = metric.resource?.name;
          const container = workload(name)?.template.spec.containers[0];
          expect(
            container.resources.requests[resource],
            `${name} requests the ${resource} the HPA measures`,
          ).toBeDefined();
        }
        const pdbs = of("PodDisruptionBudget").filter((p) =>
          selects(p.spec.selector, workload(name)?.template.metadata.labels),
        );
        expect(pdbs, `${name} PDB`).toHaveLength(1);
        const pdb = pdbs[0]?.spec;
        const allowsOneDown =
          pdb?.maxUnavailable === 1 || (pdb?.minAvailable ?? 0) < (hpa?.spec.minReplicas ?? 0);
        expect(allowsOneDown, `${name}: drains proceed while one replica stays`).toBe(true);
      }
    },
  );

  it(
    gpu
      ? "runs several orchestrator replicas on PostgreSQL (CloudNativePG), artifacts on a shared volume"
      : "keeps one orchestrator on SQLite, replaced rather than rolled (one writer of the file)",
    () => {
      const w = workload("orchestrator");
      const c = w?.template.spec.containers.find((x: { name: string }) => x.name === "orchestrator");
      const config = loadConfig(meshService("orchestrator")?.settings ?? {}, containerEnv(c, objects), []);
      const data = of("PersistentVolumeClaim").find((p) => p.metadata.name === "orchestrator-data");
      if (!gpu) {
        expect(config.databaseUrl).toBe("");
        expect(w?.object.spec.replicas).toBe(1);
        expect(w?.object.spec.strategy.type).toBe("Recreate");
        expect(data?.spec.accessModes).toEqual(["ReadWriteOnce"]);
        expect(of("Cluster")).toEqual([]);
        return;
      }
      // The DSN comes from the Secret the CloudNativePG operator writes for the Cluster's app user.
      const ref = c.env.find((e: { name: string }) => e.name === "DATABASE_URL")?.valueFrom?.secretKeyRef;
      expect(ref?.key).toBe("uri");
      const [cluster, ...more] = of("Cluster");
      expect(more).toEqual([]);
      expect(cluster?.apiVersion).toBe("postgresql.cnpg.io/v1");
      expect(ref?.name).toBe(`${cluster?.metadata.name}-app`);
      expect(cluster?.spec.instances).toBeGreaterThanOrEqual(3);
      expect(
        cluster?.spec.minSyncReplicas,
        "an acknowledged commit is on two instances",
      ).toBeGreaterThanOrEqual(1);
      expect(data?.spec.accessModes, "every replica reads every artifact").toEqual(["ReadWriteMany"]);
      expect(w?.object.spec.strategy).toEqual({
        type: "RollingUpdate",
        rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
      });
      // The orchestrator reaches the database on its port; the database admits the orchestrator.
      const egress = of("NetworkPolicy")
        .filter((p) => selects(p.spec.podSelector, w?.template.metadata.labels))
        .flatMap((p) => p.spec.egress ?? []);
      expect(egress.some((r) => r.ports?.some((p: { port: number }) => p.port === 5432))).toBe(true);
      const database = of("NetworkPolicy").filter((p) =>
        selects(p.spec.podSelector, { "cnpg.io/cluster": cluster?.metadata.name ?? "" }),
      );
      const admits = database
        .flatMap((p) => p.spec.ingress ?? [])
        .some(
          (r: K8sObject) =>
            r.ports?.some((p: { port: number }) => p.port === 5432) &&
            r.from?.some((peer: K8sObject) => selects(peer.podSelector, w?.template.metadata.labels)),
        );
      expect(admits, "the database admits the orchestrator").toBe(true);
    },
  );
});
