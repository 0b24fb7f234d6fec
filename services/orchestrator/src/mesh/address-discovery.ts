import { lookup } from "node:dns/promises";
import type { Logger } from "@dmesh/runtime/logger";

/** Every address a host name resolves to (node:dns `lookup` with `all: true`: /etc/hosts, then DNS). */
export type LookupAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

const DNS_SCHEME = "dns:///";

const lookupAll: LookupAll = (hostname) => lookup(hostname, { all: true });

/**
 * Turns a replica list of `host:port` and `dns:///name:port` entries into addresses: a static entry is
 * itself, a DNS entry is every address its name resolves to (a Kubernetes headless Service gives one per
 * pod). A name that fails to resolve keeps its last known addresses, so a DNS hiccup drops no replica.
 */
export class AddressDiscovery {
  private readonly known = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly domain: string,
    private readonly entries: readonly string[],
    private readonly logger: Logger,
    private readonly lookup: LookupAll = lookupAll,
  ) {}

  /** Whether any entry is resolved through DNS (and so worth refreshing). */
  get usesDns(): boolean {
    return this.entries.some((e) => e.startsWith(DNS_SCHEME));
  }

  async resolve(): Promise<string[]> {
    const resolved = await Promise.all(
      this.entries.map(async (entry) => {
        if (!entry.startsWith(DNS_SCHEME)) return [entry];
        const target = entry.slice(DNS_SCHEME.length);
        const colon = target.lastIndexOf(":");
        const [name, port] = [target.slice(0, colon), target.slice(colon + 1)];
        try {
          const found = (await this.lookup(name)).map((a) =>
            a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`,
          );
          this.known.set(entry, found);
          return found;
        } catch (err) {
          const kept = this.known.get(entry) ?? [];
          this.logger.warn(
            { entry, err: String(err), kept },
            `${this.domain} address lookup failed; keeping the last known addresses`,
          );
          return kept;
        }
      }),
    );
    return [...new Set(resolved.flat())].sort();
  }

  /**
   * Resolves again every `intervalMs` and hands a set that differs from the last one (initially `current`)
   * to `apply`, e.g. `ReplicaPool.setAddresses`.
   */
  refreshEvery(intervalMs: number, current: readonly string[], apply: (addresses: string[]) => void): void {
    let last = current.join(",");
    this.timer = setInterval(async () => {
      const addresses = await this.resolve();
      if (addresses.join(",") === last) return;
      last = addresses.join(",");
      this.logger.info({ addresses }, `${this.domain} replicas changed`);
      apply(addresses);
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }
}
