import * as grpc from "@grpc/grpc-js";

// grpc-js keeps its own pseudo and transport headers in Metadata; they are not the application's to see.
const RESERVED = new Set(["content-type", "te", "user-agent", "grpc-accept-encoding", "grpc-encoding"]);

export function metadataToHeaders(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, values] of Object.entries(metadata.getMap())) {
    if (RESERVED.has(key) || key.startsWith(":")) continue;
    if (key.endsWith("-bin")) continue;
    headers.append(key, String(values));
  }
  return headers;
}

export function headersToMetadata(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, key) => {
    if (!RESERVED.has(key) && !key.endsWith("-bin")) metadata.add(key, value);
  });
  return metadata;
}
