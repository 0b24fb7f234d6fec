import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, relative, sep } from "node:path";
import { gzipSync } from "node:zlib";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Logger } from "@dmesh/runtime";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".webmanifest", ".txt"]);

// The page talks to this origin only (Connect calls) and shows images it made from bytes (blob:/data:).
const PAGE_POLICY = [
  "default-src 'self'",
  "img-src 'self' blob: data:",
  "style-src 'self' 'unsafe-inline'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** A bundler's output is small: anything larger is a wrong directory, not a playground. */
const MAX_TOTAL_BYTES = 32 * 1024 * 1024;
const MAX_FILES = 500;

type HttpHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;

interface StaticFile {
  readonly body: Buffer;
  readonly gzip: Buffer | undefined;
  readonly headers: Record<string, string>;
  readonly etag: string;
}

/** The playground's build (`packages/web/dist`) where this install has one, else undefined. */
export function playgroundDir(): string | undefined {
  try {
    const manifest = createRequire(import.meta.url).resolve("@dmesh/web/package.json");
    const dist = join(dirname(manifest), "dist");
    return existsSync(join(dist, "index.html")) ? dist : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Serves a directory's files read once at startup: GET and HEAD of `/` (index.html) and of each file's own
 * path, nothing else. Paths are looked up in a table of the files found, never joined onto the disk path,
 * so no request can reach outside the directory. Hashed `/assets/` are cached for a year, the rest revalidated.
 * Without a directory, `/` says how to build one. Other methods and paths get 404, as without this route.
 */
export function createStaticFiles(root: string | undefined, logger: Logger): HttpHandler {
  const files = root ? readTree(root) : new Map<string, StaticFile>();
  if (root) logger.info({ root, files: files.size }, "serving the web playground at /");
  else
    logger.warn({}, "no web playground build found (npm run build makes packages/web/dist): / answers 404");

  return (req, res) => {
    const method = req.method ?? "GET";
    const path = pathOf(req.url ?? "/");
    const file =
      method === "GET" || method === "HEAD" ? files.get(path === "/" ? "/index.html" : path) : undefined;
    if (!file) {
      const missingPage = !root && path === "/" && method === "GET";
      const body = missingPage ? "the web playground is not built: run npm run build\n" : "";
      res.writeHead(404, missingPage ? { "content-type": "text/plain; charset=utf-8" } : {});
      res.end(body);
      return;
    }
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, { etag: file.etag, "cache-control": file.headers["cache-control"] ?? "no-cache" });
      res.end();
      return;
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? (file.gzip as Buffer) : file.body;
    res.writeHead(200, {
      ...file.headers,
      etag: file.etag,
      "content-length": String(body.length),
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    if (method === "HEAD") res.end();
    else res.end(body);
  };
}

/** The URL's path without query, percent-decoded; "" when it cannot be decoded. */
function pathOf(url: string): string {
  const raw = url.split(/[?#]/, 1)[0] ?? "/";
  try {
    return decodeURIComponent(raw);
  } catch {
    return "";
  }
}

function readTree(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const body = readFileSync(full);
        total += body.length;
        if (total > MAX_TOTAL_BYTES || files.size >= MAX_FILES)
          throw new Error(`${root}: more than ${MAX_FILES} files or ${MAX_TOTAL_BYTES} bytes to serve`);
        const urlPath = `/${relative(root, full).split(sep).join("/")}`;
        files.set(urlPath, toStaticFile(urlPath, body, statSync(full).mtimeMs));
      }
    }
  };
  walk(root);
  return files;
}

function toStaticFile(urlPath: string, body: Buffer, mtimeMs: number): StaticFile {
  const ext = extname(urlPath).toLowerCase();
  const headers: Record<string, string> = {
    "content-type": CONTENT_TYPES[ext] ?? "application/octet-stream",
    // Vite names assets by their content hash: a changed file is a new name.
    "cache-control": urlPath.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
    "x-content-type-options": "nosniff",
  };
  if (ext === ".html") {
    headers["content-security-policy"] = PAGE_POLICY;
    headers["referrer-policy"] = "no-referrer";
  }
  const gzip = COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body) : undefined;
  if (gzip) headers.vary = "accept-encoding";
  return { body, gzip, headers, etag: `W/"${body.length.toString(16)}-${Math.floor(mtimeMs).toString(16)}"` };
}
