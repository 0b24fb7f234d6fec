import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@dmesh/contracts/grpc/health/v1/health_pb.js";
import {
  createHealthService,
  createLogger,
  HealthRegistry,
  type RunningConnectServer,
  startConnectServer,
} from "@dmesh/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStaticFiles } from "../src/static-files.js";

const logger = createLogger("test", "silent");
const SECRET = "the secret beside the served directory";
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});\n`;

let dir: string;
const servers: RunningConnectServer[] = [];

/** The static route on a real Connect server of ours, with one RPC service beside it. */
async function serve(root: string | undefined): Promise<RunningConnectServer> {
  const health = new HealthRegistry([Health.typeName]);
  health.setReady(true);
  const server = await startConnectServer({
    name: "static-test",
    host: "127.0.0.1",
    port: 0,
    logger,
    routes: (router) => router.service(Health, createHealthService(health)),
    interceptors: [],
    maxMessageBytes: 1024 * 1024,
    shutdownGraceMs: 100,
    fallback: createStaticFiles(root, logger),
  });
  servers.push(server);
  return server;
}

/** A raw HTTP/1.1 request: the path goes out exactly as written (fetch would resolve "..", curl too). */
function request(
  server: RunningConnectServer,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: server.port,
        path,
        method: options.method ?? "GET",
        headers: options.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

beforeAll(() => {
  const base = mkdtempSync(join(tmpdir(), "dmesh-static-"));
  dir = join(base, "dist");
  mkdirSync(join(dir, "assets"), { recursive: true });
  writeFileSync(join(base, "secret.txt"), SECRET);
  writeFileSync(
    join(dir, "index.html"),
    "<!doctype html><title>t</title><script src=./assets/app-1a2b.js></script>",
  );
  writeFileSync(join(dir, "assets", "app-1a2b.js"), SCRIPT);
  writeFileSync(join(dir, "assets", "style-3c4d.css"), "body{margin:0}");
  writeFileSync(join(dir, "favicon.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>");
});
afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(join(dir, ".."), { recursive: true, force: true });
});

describe("the orchestrator's static route", () => {
  it("serves / as the page, with a content policy that keeps it to its own origin, revalidated", async () => {
    const server = await serve(dir);
    const res = await request(server, "/");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache");
    expect(res.headers["content-security-policy"]).toContain("default-src 'self'");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.body.toString()).toContain("<title>t</title>");
    expect((await request(server, "/index.html?v=1")).body.toString()).toContain("<title>t</title>");
    const icon = await request(server, "/favicon.svg");
    expect(icon.headers["content-type"]).toBe("image/svg+xml");
  });

  it("serves hashed assets for a year, gzipped when asked, with an etag that answers 304", async () => {
    const server = await serve(dir);
    const plain = await request(server, "/assets/app-1a2b.js");
    expect(plain.status).toBe(200);
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(plain.body.toString()).toBe(SCRIPT);
    expect(plain.headers["content-encoding"]).toBeUndefined();

    const zipped = await request(server, "/assets/app-1a2b.js", {
      headers: { "accept-encoding": "gzip, br" },
    });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers.vary).toBe("accept-encoding");
    expect(Number(zipped.headers["content-length"])).toBe(zipped.body.length);
    expect(gunzipSync(zipped.body).toString()).toBe(SCRIPT);

    const etag = plain.headers.etag ?? "";
    expect(etag).toMatch(/^W\/"/);
    const again = await request(server, "/assets/app-1a2b.js", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);

    const head = await request(server, "/assets/style-3c4d.css", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(head.headers["content-length"]).toBe("14");
    expect(head.body.length).toBe(0);
  });

  it("answers 404 to every way out of the directory, and to other paths and methods", async () => {
    const server = await serve(dir);
    for (const path of [
      "/../secret.txt",
      "/assets/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
      "/..%5csecret.txt",
      "//secret.txt",
      "/assets/",
      "/assets",
      "/%00",
      "/%E0%A4%A",
      "/nothing-here.js",
    ]) {
      const res = await request(server, path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString(), path).not.toContain(SECRET);
    }
    for (const method of ["POST", "PUT", "DELETE"])
      expect((await request(server, "/", { method })).status).toBe(404);
  });

  it("leaves every RPC to the API on the same port", async () => {
    const server = await serve(dir);
    const client = createClient(
      Health,
      createConnectTransport({ baseUrl: `http://${server.address}`, httpVersion: "1.1" }),
    );
    const { status } = await client.check({ service: "" }, { timeoutMs: 5000 });
    expect(status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("without a build, says at / how to make one", async () => {
    const server = await serve(undefined);
    const res = await request(server, "/");
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe("the web playground is not built: run npm run build\n");
    expect((await request(server, "/assets/app-1a2b.js")).status).toBe(404);
  });
});
