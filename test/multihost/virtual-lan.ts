import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** One simulated machine: a network namespace with one interface (`eth0`) and its own address. */
export interface VirtualHost {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
}

/**
 * Hosts on one private LAN: a network namespace per host, each linked by a veth pair to a bridge that
 * lives in a namespace of its own. Nothing is added to the caller's namespace, so no traffic can leave
 * the LAN and the host machine's routes are untouched.
 */
export interface VirtualLan {
  readonly hosts: ReadonlyMap<string, VirtualHost>;
  host(name: string): VirtualHost;
  /** argv that runs `argv` inside the host's namespace. */
  inside(name: string, argv: readonly string[]): [string, string[]];
  /** Takes the host's link down (packets are dropped, as with a pulled cable) or back up. */
  setLink(name: string, up: boolean): void;
  /** Deletes every namespace (and with them the veths and the bridge); processes inside must be gone. */
  destroy(): void;
}

const ip = (...args: string[]) =>
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });

/** Why namespaces cannot be created here (not root, no iproute2, no kernel support), or undefined. */
export function namespaceSupport(): string | undefined {
  const probe = `dmesh-probe-${process.pid}-${randomBytes(3).toString("hex")}`;
  const add = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8", timeout: 10_000 });
  if (add.error) return `iproute2 unavailable (${add.error.message})`;
  if (add.status !== 0) return `\`ip netns add\` failed: ${add.stderr.trim() || `exit ${add.status}`}`;
  spawnSync("ip", ["netns", "del", probe], { timeout: 10_000 });
  return undefined;
}

/**
 * Creates the LAN `<subnet>.0/24` with the given hosts (name → last octet). Namespace names carry the pid
 * and a random suffix, so concurrent runs never collide; a failed setup removes what it created.
 */
export function createVirtualLan(subnet: string, hosts: Record<string, number>): VirtualLan {
  const prefix = `dmesh-${process.pid}-${randomBytes(3).toString("hex")}`;
  const bridge = `${prefix}-lan`;
  const created: string[] = [];
  const table = new Map<string, VirtualHost>();
  const destroy = () => {
    for (const namespace of created.splice(0).reverse()) {
      spawnSync("ip", ["netns", "del", namespace], { timeout: 10_000 });
    }
  };
  try {
    ip("netns", "add", bridge);
    created.push(bridge);
    ip("-n", bridge, "link", "add", "br0", "type", "bridge");
    ip("-n", bridge, "link", "set", "br0", "up");
    Object.entries(hosts).forEach(([name, octet], index) => {
      const host = { name, namespace: `${prefix}-${name}`, address: `${subnet}.${octet}` };
      ip("netns", "add", host.namespace);
      created.push(host.namespace);
      const port = `p${index}`;
      ip(
        "link",
        "add",
        "eth0",
        "netns",
        host.namespace,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        bridge,
      );
      ip("-n", bridge, "link", "set", port, "master", "br0", "up");
      ip("-n", host.namespace, "addr", "add", `${host.address}/24`, "dev", "eth0");
      ip("-n", host.namespace, "link", "set", "eth0", "up");
      ip("-n", host.namespace, "link", "set", "lo", "up");
      table.set(name, host);
    });
  } catch (err) {
    destroy();
    throw new Error(`creating the virtual LAN failed: ${(err as { stderr?: Buffer }).stderr ?? err}`);
  }
  const host = (name: string) => {
    const h = table.get(name);
    if (!h) throw new Error(`no host "${name}" on the virtual LAN`);
    return h;
  };
  return {
    hosts: table,
    host,
    inside: (name, argv) => ["ip", ["netns", "exec", host(name).namespace, ...argv]],
    setLink: (name, up) => ip("-n", host(name).namespace, "link", "set", "eth0", up ? "up" : "down"),
    destroy,
  };
}
