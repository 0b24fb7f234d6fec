import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname } from "node:path";

/** How often watched files are stat'ed, besides the change events of their directories. */
export const FILE_RECHECK_MS = 5000;
/** Changes closer together than this are read once: a writer replacing several files is done by then. */
const SETTLE_MS = 100;

export interface FileWatch {
  close(): void;
}

/**
 * Calls `onChange` after any of `paths` changed (content, size, or the file behind the name: a Kubernetes
 * Secret is updated by swapping a symlink). Directory change events make it quick; a periodic re-stat catches
 * what events miss (network filesystems, a watch that failed). Nothing here keeps the process alive.
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => void,
  recheckMs = FILE_RECHECK_MS,
): FileWatch {
  let last = signature(paths);
  let settle: NodeJS.Timeout | undefined;
  const check = () => {
    clearTimeout(settle);
    settle = setTimeout(() => {
      const now = signature(paths);
      if (now === last) return;
      last = now;
      onChange();
    }, SETTLE_MS);
    settle.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    try {
      const watcher = watch(dir, { persistent: false }, check);
      watcher.on("error", () => watcher.close());
      watchers.push(watcher);
    } catch {
      // No events here: the re-stat still sees changes.
    }
  }
  const timer = setInterval(check, recheckMs);
  timer.unref();
  return {
    close() {
      clearInterval(timer);
      clearTimeout(settle);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/** What identifies the files' current versions (a missing file counts as a version too). */
function signature(paths: readonly string[]): string {
  return paths
    .map((path) => {
      try {
        const s = statSync(path);
        return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch {
        return "missing";
      }
    })
    .join("|");
}
