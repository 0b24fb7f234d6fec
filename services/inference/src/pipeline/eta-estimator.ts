/**
 * Learns how long a denoising step takes per (model, size, provider) from measured steps, so the ETA of the
 * next request is right from its first step. An exponential moving average follows load changes.
 */
export class EtaEstimator {
  private readonly stepSeconds = new Map<string, number>();
  private readonly alpha = 0.3;

  key(model: string, width: number, height: number, provider: string): string {
    return `${model}|${width}x${height}|${provider}`;
  }

  record(key: string, seconds: number): void {
    const prev = this.stepSeconds.get(key);
    this.stepSeconds.set(key, prev === undefined ? seconds : prev + this.alpha * (seconds - prev));
  }

  /** Seconds left for `remainingSteps`, or undefined before anything was measured. */
  estimate(key: string, remainingSteps: number): number | undefined {
    const per = this.stepSeconds.get(key);
    return per === undefined ? undefined : per * remainingSteps;
  }
}
