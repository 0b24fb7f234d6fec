/**
 * Deterministic RGB pixels that compress like a picture rather than like noise or a flat fill: smooth
 * colour fields and soft shapes, with a little seeded grain (PNG encoding time depends on it).
 */
export function benchImage(size: number): Buffer {
  const data = Buffer.alloc(size * size * 3);
  let seed = 0x2545f491;
  const grain = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return ((seed >>> 0) % 9) - 4;
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = x / size;
      const v = y / size;
      const wave = Math.sin(u * 9 + Math.cos(v * 7) * 2) * Math.cos(v * 11 - u * 3);
      const i = (y * size + x) * 3;
      data[i] = clamp(40 + 180 * v + 30 * wave + grain());
      data[i + 1] = clamp(70 + 120 * u * (1 - v) + 40 * wave + grain());
      data[i + 2] = clamp(200 - 150 * v + 25 * Math.sin(u * 25) + grain());
    }
  }
  return data;
}

function clamp(value: number): number {
  return Math.max(0, Math.min(255, Math.round(value)));
}
