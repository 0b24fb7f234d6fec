import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { listSupportedBackends } from "onnxruntime-node";

/** A backend this onnxruntime-node build knows; `bundled: false` means its library is installed separately. */
export interface OnnxBackend {
  readonly name: string;
  readonly bundled: boolean;
}

export function listOnnxBackends(): OnnxBackend[] {
  return listSupportedBackends().map(({ name, bundled }) => ({ name, bundled }));
}

/** Provider libraries onnxruntime-node's install script puts next to its binding (not in the npm package). */
const PROVIDER_LIBRARIES: Readonly<Record<string, Partial<Record<NodeJS.Platform, string>>>> = {
  cuda: { linux: "libonnxruntime_providers_cuda.so", win32: "onnxruntime_providers_cuda.dll" },
  tensorrt: { linux: "libonnxruntime_providers_tensorrt.so", win32: "onnxruntime_providers_tensorrt.dll" },
};

/** Path of the provider library `backend` needs on `platform`, whether or not it is installed. */
export function providerLibraryPath(
  backend: string,
  platform = process.platform,
  arch = process.arch,
): string | undefined {
  const file = PROVIDER_LIBRARIES[backend]?.[platform];
  if (file === undefined) return undefined;
  const packageMain = createRequire(import.meta.url).resolve("onnxruntime-node");
  return join(dirname(packageMain), "..", "bin", "napi-v6", platform, arch, file);
}
