import { delimiter, join } from "node:path";
import { fileExists } from "./file-exists.js";
import { runCommand } from "./run-command.js";

const PROBE_TIMEOUT_MS = 5000;

/**
 * Sonames that `libraryPath` needs but the dynamic loader cannot find (`ldd`'s "=> not found" lines):
 * exactly why onnxruntime would fail to load a provider library. Undefined when ldd is unavailable.
 */
export async function missingDependencies(
  libraryPath: string,
  signal?: AbortSignal,
): Promise<string[] | undefined> {
  const result = await runCommand("ldd", [libraryPath], { timeoutMs: PROBE_TIMEOUT_MS, signal });
  return result.ok ? parseLddMissing(result.stdout) : undefined;
}

export function parseLddMissing(lddOutput: string): string[] {
  return lddOutput
    .split("\n")
    .map((line) => /^\s*(\S+)\s+=>\s+not found/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

/**
 * Where the dynamic loader would find a library that is opened at run time (dlopen) rather than
 * linked: LD_LIBRARY_PATH first, then the ld.so cache. Linux only.
 */
export async function findSharedLibrary(
  soname: string,
  ldLibraryPath = process.env.LD_LIBRARY_PATH ?? "",
  signal?: AbortSignal,
): Promise<string | undefined> {
  for (const dir of ldLibraryPath.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, soname);
    if (await fileExists(candidate)) return candidate;
  }
  for (const ldconfig of ["ldconfig", "/sbin/ldconfig"]) {
    const result = await runCommand(ldconfig, ["-p"], { timeoutMs: PROBE_TIMEOUT_MS, signal });
    if (result.ok) return parseLdconfigCache(result.stdout, is64BitProcess()).get(soname);
  }
  return undefined;
}

/**
 * `ldconfig -p` lines ("\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1") as soname → path.
 * The first entry wins, as for the loader; a 64-bit process only loads entries flagged x86-64 or AArch64.
 */
export function parseLdconfigCache(text: string, want64Bit: boolean): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split("\n")) {
    const [, soname, flags = "", path] = /^\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(.+)$/.exec(line) ?? [];
    if (!soname || !path || entries.has(soname) || flags.includes("64") !== want64Bit) continue;
    entries.set(soname, path.trim());
  }
  return entries;
}

function is64BitProcess(): boolean {
  return ["x64", "arm64", "ppc64", "s390x", "riscv64", "loong64"].includes(process.arch);
}
