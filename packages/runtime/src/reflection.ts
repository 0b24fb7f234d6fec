import type { DescFile, DescService } from "@bufbuild/protobuf";
import { createRegistry, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import * as v1 from "@dmesh/contracts/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "@dmesh/contracts/grpc/reflection/v1alpha/reflection_pb.js";

type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/**
 * gRPC server reflection (v1 and the v1alpha that older grpcurl and grpc_cli still ask for), answered
 * from the descriptors the generated code already embeds.
 */
export function createReflectionServices(services: DescService[]) {
  const names = services.map((s) => s.typeName).sort();
  const registry = createRegistry(...services.map((s) => s.file));
  const files = new Map<string, DescFile>();
  const collect = (f: DescFile) => {
    if (files.has(f.name)) return;
    files.set(f.name, f);
    for (const dep of f.dependencies) collect(dep);
  };
  for (const s of services) collect(s.file);

  const withDependencies = (file: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const out: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  };

  const fileForSymbol = (symbol: string): DescFile | undefined => {
    const desc = registry.get(symbol);
    if (desc) return desc.file;
    // Methods are not registry entries: "pkg.Service.Method" resolves through its service.
    const service = registry.getService(symbol.slice(0, Math.max(0, symbol.lastIndexOf("."))));
    return service?.file;
  };

  const answer = (req: ReflectionRequest) => {
    const r = req.messageRequest;
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: { errorCode: 5, errorMessage: `${what} not found` },
    });
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse" as const, value: { service: names.map((name) => ({ name })) } };
      case "fileByFilename": {
        const file = files.get(r.value);
        return file
          ? {
              case: "fileDescriptorResponse" as const,
              value: { fileDescriptorProto: withDependencies(file) },
            }
          : notFound(`file "${r.value}"`);
      }
      case "fileContainingSymbol": {
        const file = fileForSymbol(r.value);
        return file
          ? {
              case: "fileDescriptorResponse" as const,
              value: { fileDescriptorProto: withDependencies(file) },
            }
          : notFound(`symbol "${r.value}"`);
      }
      case "allExtensionNumbersOfType":
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: r.value, extensionNumber: [] },
        };
      default:
        return { case: "errorResponse" as const, value: { errorCode: 12, errorMessage: "not implemented" } };
    }
  };

  const impl = {
    async *serverReflectionInfo(requests: AsyncIterable<ReflectionRequest>) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answer(req) };
      }
    },
  };
  return [
    { service: v1.ServerReflection, impl: impl as ServiceImpl<typeof v1.ServerReflection> },
    {
      service: v1alpha.ServerReflection,
      impl: impl as unknown as ServiceImpl<typeof v1alpha.ServerReflection>,
    },
  ];
}
