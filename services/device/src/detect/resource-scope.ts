/**
 * Whose CPU and memory the service reports. `container`: what this process may use, the node's figures
 * capped by its own cgroup limits (a laptop, or a device service sharing a container with inference).
 * `node`: the whole node whatever this process's limits, for a per-node DaemonSet that speaks for the
 * inference pods beside it.
 */
export const RESOURCE_SCOPES = ["container", "node"] as const;
export type ResourceScope = (typeof RESOURCE_SCOPES)[number];
