import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium } from "playwright-core";
import { expect } from "vitest";

/** Debian's Chromium, which `.ci/run` installs; CHROMIUM_PATH points elsewhere. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Why the browser tests cannot run here, or undefined when they can. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM)
    ? undefined
    : `no Chromium at ${CHROMIUM}: .ci/run installs Debian's chromium (apt-get install -y chromium)`;
}

/** Where each page's screenshot is saved (git-ignored). */
export const SCREENSHOTS = fileURLToPath(new URL("../../../../test-results/web/", import.meta.url));

export interface Chromium {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/**
 * The system Chromium, headless, with a fresh profile and nothing that reaches the network on its own
 * (no component updates, sync or background requests), so a test sees only the page's own requests.
 */
export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), "dmesh-chromium-"));
  mkdirSync(SCREENSHOTS, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    acceptDownloads: true,
    timeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * expect.poll with room for a loaded machine: the page's calls go through real services, so a value may
 * take seconds to appear (vitest's default gives up after one).
 */
export function poll<T>(read: () => T | Promise<T>, timeoutMs = 30_000) {
  return expect.poll(read, { timeout: timeoutMs, interval: 100 });
}
