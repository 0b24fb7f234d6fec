/**
 * Learns how long a denoising step takes per (model, size, provider) from measured steps, so the ETA of the
 * next request is right from its first step. An exponential moving average follows load changes; the
 * table keeps the most recently used shapes only, so arbitrary request sizes cannot grow it without bound.
 */
export class EtaEstimator {
  private readonly stepSeconds = new Map<string, number>();
  private readonly alpha = 0.3;

  constructor(private readonly maxKeys = 256) {}

  key(model: string, width: number, height: number, provider: string): string {
    return `${model}|${width}x${height}|${provider}`;
  }

  record(key: string, seconds: number): void {
    const prev = this.stepSeconds.get(key);
    // Re-inserting moves the key to the end: the first key is the least recently measured.
    this.stepSeconds.delete(key);
    this.stepSeconds.set(key, prev === undefined ? seconds : prev + this.alpha * (seconds - prev));
    if (this.stepSeconds.size > this.maxKeys)
      this.stepSeconds.delete(this.stepSeconds.keys().next().value as string);
  }

  /** Seconds left for `remainingSteps`, or undefined before anything was measured. */
  estimate(key: string, remainingSteps: number): number | undefined {
    const per = this.stepSeconds.get(key);
    return per === undefined ? undefined : per * remainingSteps;
  }
}
