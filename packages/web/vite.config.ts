import { defineConfig } from "vite";

// Static files for the orchestrator to serve at `/`: relative asset URLs, so the page also works behind a
// gateway that mounts the orchestrator under a path; nothing is fetched from elsewhere at run time.
export default defineConfig({
  base: "./",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Everything the page needs is in its own files: no data: URLs the CSP would have to allow for scripts.
    assetsInlineLimit: 0,
  },
});
