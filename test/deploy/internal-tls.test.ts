import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { loadConfig } from "@dmesh/runtime";
import { afterAll, describe, expect, it } from "vitest";
import { containerEnv, podWorkloads } from "./k8s-objects.js";
import { findKubectl, type K8sObject, renderKustomization } from "./kubectl-render.js";
import { MESH_SERVICES, meshService, REPO_ROOT } from "./mesh-services.js";

const kubectl = findKubectl();
const TITLE = kubectl
  ? "the internal-tls component over deploy/overlays/%s"
  : "the internal-tls component over deploy/overlays/%s (skipped: kubectl not found on PATH)";
const PROBE = ["node", "packages/runtime/dist/health-probe.js"];
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The overlay with the component added, rendered as an operator would compose them. */
function render(overlay: string): K8sObject[] {
  const dir = mkdtempSync(join(tmpdir(), "dmesh-kustomize-"));
  dirs.push(dir);
  const path = (p: string) => relative(dir, join(REPO_ROOT, p));
  writeFileSync(
    join(dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      `resources: [${path(`deploy/overlays/${overlay}`)}]`,
      `components: [${path("deploy/components/internal-tls")}]`,
    ].join("\n"),
  );
  return kubectl ? renderKustomization(kubectl, dir) : [];
}

describe.skipIf(!kubectl).each(["dev", "prod"])(TITLE, (overlay) => {
  const objects = render(overlay);
  const workloads = podWorkloads(objects);
  const container = (name: string) =>
    workloads.find((w) => w.name === name)?.template.spec.containers.find((c: K8sObject) => c.name === name);
  const config = (name: string) =>
    loadConfig(meshService(name)?.settings ?? {}, containerEnv(container(name), objects), []);
  const secretFiles = (name: string) => {
    const spec = workloads.find((w) => w.name === name)?.template.spec;
    const mount = container(name).volumeMounts.find((m: K8sObject) => m.name === "internal-tls");
    const volume = spec.volumes.find((v: K8sObject) => v.name === "internal-tls");
    expect(volume?.secret?.secretName, name).toBe("dmesh-internal-tls");
    expect(mount?.readOnly, name).toBe(true);
    // A directory mount, not subPath: a Secret update reaches the files, and the services reload them.
    expect(mount?.subPath, name).toBeUndefined();
    return (file: string) => file.startsWith(`${mount?.mountPath}/`);
  };

  it("gives every domain service a mutual-TLS listener, and the orchestrator TLS calls with its certificate", () => {
    for (const { name } of MESH_SERVICES) {
      const inSecret = secretFiles(name);
      const c = config(name);
      if (name === "orchestrator") {
        for (const file of [c.tlsCaFile, c.tlsClientCertFile, c.tlsClientKeyFile])
          expect(inSecret(String(file))).toBe(true);
        expect(c.tlsServerName).not.toBe("");
      } else {
        for (const file of [c.tlsCertFile, c.tlsKeyFile, c.tlsClientCaFile])
          expect(inSecret(String(file)), name).toBe(true);
      }
    }
  });

  it("probes the domain services with the TLS health probe, asking what the gRPC probes asked", () => {
    expect(existsSync(join(REPO_ROOT, "packages/runtime/src/health-probe.ts"))).toBe(true);
    for (const { name } of MESH_SERVICES) {
      const c = container(name);
      for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        const probe = c[kind];
        if (!probe) continue;
        if (name === "orchestrator") {
          expect(probe.grpc, `${name} ${kind}: its port stays plaintext`).toBeDefined();
          continue;
        }
        expect(probe.grpc, `${name} ${kind}`).toBeUndefined();
        expect(probe.exec.command, `${name} ${kind}`).toEqual([
          ...PROBE,
          kind === "livenessProbe" ? "liveness" : "",
        ]);
        // Node starting and a TLS handshake take longer than the default 1 s.
        expect(probe.timeoutSeconds, `${name} ${kind}`).toBeGreaterThanOrEqual(3);
      }
    }
  });
});
