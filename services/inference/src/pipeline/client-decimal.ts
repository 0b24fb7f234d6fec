/**
 * The decimal a client most likely wrote for a proto `float`: 0.9 arrives as 0.8999999761581421. Where
 * diffusers computes with the Python float (`int(steps * strength)`, the handoff cutoff), using the float32
 * value would cut the schedule one step short; seven significant digits recover what was sent.
 */
export function clientDecimal(value: number): number {
  return Number(Math.fround(value).toPrecision(7));
}
