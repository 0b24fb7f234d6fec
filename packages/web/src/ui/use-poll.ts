import { useEffect, useRef } from "preact/hooks";

/**
 * Calls `load` now and then every `intervalMs` after the previous call ends, while `active` and the tab is
 * visible; a call in flight is aborted when that stops. `deps` restart it (e.g. after signing in).
 */
export function usePoll(
  active: boolean,
  intervalMs: number,
  load: (signal: AbortSignal) => Promise<void>,
  deps: unknown[] = [],
): void {
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    if (!active) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      if (document.visibilityState === "visible") {
        try {
          await latest.current(controller.signal);
        } catch {
          // The page shows its own errors; polling goes on.
        }
      }
      if (!controller.signal.aborted) timer = setTimeout(tick, intervalMs);
    };
    void tick();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [active, intervalMs, ...deps]);
}
