export interface QueuedSession {
  readonly id: string;
  readonly tenant: string;
  readonly priority: number;
  readonly seq: number;
}

/**
 * Sessions waiting to run, one line per tenant. Within a tenant, higher priority first, then first come.
 * Across tenants, a free slot goes to the tenant with the fewest sessions running (ties: the one served
 * longest ago), so one tenant's long batch delays another tenant's single image by one running slot at
 * most: that image starts when the first slot frees, whatever the other tenant has queued.
 */
export class FairQueue {
  private readonly lines = new Map<string, QueuedSession[]>();
  private readonly entries = new Map<string, QueuedSession>();
  private readonly served = new Map<string, number>();
  private seq = 0;
  private turns = 0;

  get size(): number {
    return this.entries.size;
  }

  sizeOf(tenant: string): number {
    return this.lines.get(tenant)?.length ?? 0;
  }

  /** Queues the session (again: its old place is given up). */
  push(id: string, tenant: string, priority: number): void {
    this.remove(id);
    const entry = { id, tenant, priority, seq: this.seq++ };
    const line = this.lines.get(tenant) ?? [];
    this.lines.set(tenant, line);
    const after = line.findIndex((q) => q.priority < priority);
    line.splice(after < 0 ? line.length : after, 0, entry);
    this.entries.set(id, entry);
  }

  remove(id: string): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    const line = this.lines.get(entry.tenant) ?? [];
    line.splice(line.indexOf(entry), 1);
    if (line.length === 0) this.lines.delete(entry.tenant);
    return true;
  }

  /**
   * Takes the next session to start, from the tenants that `mayRun` allows (under their running quota):
   * the one with the fewest `running`, ties to the one served longest ago. Undefined when none may run.
   */
  take(running: (tenant: string) => number, mayRun: (tenant: string) => boolean): QueuedSession | undefined {
    let best: { tenant: string; running: number; served: number } | undefined;
    for (const tenant of this.lines.keys()) {
      if (!mayRun(tenant)) continue;
      const candidate = { tenant, running: running(tenant), served: this.served.get(tenant) ?? -1 };
      if (
        !best ||
        candidate.running < best.running ||
        (candidate.running === best.running && candidate.served < best.served)
      )
        best = candidate;
    }
    const entry = best && this.lines.get(best.tenant)?.[0];
    if (!entry) return undefined;
    this.remove(entry.id);
    this.served.set(entry.tenant, this.turns++);
    return entry;
  }
}
