import { MIB } from "../units/bytes.js";
import { runCommand } from "./run-command.js";

export const NVIDIA_SMI_FIELDS = [
  "index",
  "uuid",
  "name",
  "memory.total",
  "memory.used",
  "memory.free",
  "utilization.gpu",
  "temperature.gpu",
  "driver_version",
] as const;

export const NVIDIA_SMI_ARGS = [
  `--query-gpu=${NVIDIA_SMI_FIELDS.join(",")}`,
  "--format=csv,noheader,nounits",
];

/** One GPU as nvidia-smi reports it; unknown values ("[N/A]", "[Not Supported]", …) are absent. */
export interface NvidiaGpu {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly memoryTotalBytes?: number;
  readonly memoryUsedBytes?: number;
  readonly memoryFreeBytes?: number;
  /** 0–1. */
  readonly utilization?: number;
  readonly temperatureC?: number;
  readonly driverVersion?: string;
}

export interface NvidiaSmiResult {
  readonly gpus: readonly NvidiaGpu[];
  /** Why nvidia-smi, present but unhealthy, gave nothing (driver not loaded, timeout, odd output). */
  readonly problem?: string;
}

export interface NvidiaSmiOptions {
  readonly command?: string;
  /** Replaces the query arguments; for exercising the spawn path with another program. */
  readonly args?: readonly string[];
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Asks nvidia-smi for every GPU. No nvidia-smi on the PATH means no NVIDIA GPU: an empty list and no
 * problem. A failure or a hang is reported as `problem`, never thrown.
 */
export async function queryNvidiaSmi(options: NvidiaSmiOptions = {}): Promise<NvidiaSmiResult> {
  const command = options.command ?? "nvidia-smi";
  const result = await runCommand(command, options.args ?? NVIDIA_SMI_ARGS, {
    timeoutMs: options.timeoutMs ?? 5000,
    signal: options.signal,
  });
  if (!result.ok) return result.reason === "not_found" ? { gpus: [] } : { gpus: [], problem: result.message };
  try {
    return { gpus: parseNvidiaSmiCsv(result.stdout) };
  } catch (error) {
    return { gpus: [], problem: `${command} output not understood: ${(error as Error).message}` };
  }
}

/** Parses `--query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits` output (MiB, %, °C). */
export function parseNvidiaSmiCsv(text: string): NvidiaGpu[] {
  const fieldCount = NVIDIA_SMI_FIELDS.length;
  return text
    .split(/\r?\n/)
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== "")
    .map(({ line, number }) => {
      let cells = line.split(",").map((cell) => cell.trim());
      // A comma inside the product name is the only way to get extra cells: fold them back into it.
      if (cells.length > fieldCount) {
        const extra = cells.length - fieldCount;
        cells = [...cells.slice(0, 2), cells.slice(2, 3 + extra).join(", "), ...cells.slice(3 + extra)];
      }
      if (cells.length !== fieldCount) {
        throw new Error(`line ${number} has ${cells.length} fields, expected ${fieldCount}: ${line}`);
      }
      const [index, uuid, name, total, used, free, utilization, temperature, driver] = cells.map(known);
      const gpuIndex = parseNumberCell(index);
      if (gpuIndex === undefined || uuid === undefined || name === undefined) {
        throw new Error(`line ${number} lacks an index, uuid or name: ${line}`);
      }
      const percent = parseNumberCell(utilization);
      return {
        index: gpuIndex,
        uuid,
        name,
        memoryTotalBytes: mib(total),
        memoryUsedBytes: mib(used),
        memoryFreeBytes: mib(free),
        utilization: percent === undefined ? undefined : percent / 100,
        temperatureC: parseNumberCell(temperature),
        driverVersion: driver,
      };
    });
}

/** nvidia-smi writes "[N/A]", "[Not Supported]", "[Insufficient Permissions]", … for unknown values. */
function known(cell: string): string | undefined {
  return cell === "" || /^\[.*\]$/.test(cell) || cell === "N/A" ? undefined : cell;
}

function parseNumberCell(cell: string | undefined): number | undefined {
  if (cell === undefined) return undefined;
  const value = Number(cell);
  return Number.isFinite(value) ? value : undefined;
}

function mib(cell: string | undefined): number | undefined {
  const value = parseNumberCell(cell);
  return value === undefined ? undefined : value * MIB;
}
