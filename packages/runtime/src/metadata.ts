import * as grpc from "@grpc/grpc-js";

// grpc-js keeps its own pseudo and transport headers in Metadata; they are not the application's to see.
const RESERVED = new Set(["content-type", "te", "user-agent", "grpc-accept-encoding", "grpc-encoding"]);

/** What `new Headers(init)` accepts, and Connect passes as call headers. */
export type HeadersInit = ConstructorParameters<typeof Headers>[0];

function isApplicationKey(key: string): boolean {
  return !RESERVED.has(key) && !key.startsWith(":") && !key.endsWith("-bin");
}

/** Appends the application's entries of `metadata` (the first value of each key) to `headers`. */
export function appendMetadata(headers: Headers, metadata: grpc.Metadata): Headers {
  const map = metadata.getMap();
  for (const key in map) {
    if (isApplicationKey(key)) headers.append(key, String(map[key]));
  }
  return headers;
}

export function metadataToHeaders(metadata: grpc.Metadata): Headers {
  return appendMetadata(new Headers(), metadata);
}

/**
 * Headers as grpc-js metadata. A plain record (what Connect call options usually carry) is read directly:
 * building a `Headers` object only to read it back costs more than the rest of the conversion.
 */
export function headersToMetadata(headers: HeadersInit | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (headers === undefined) return metadata;
  if (!isRecord(headers)) {
    const all = headers instanceof Headers ? headers : new Headers(headers);
    all.forEach((value, key) => {
      if (isApplicationKey(key)) metadata.add(key, value);
    });
    return metadata;
  }
  for (const key in headers) {
    const name = key.toLowerCase();
    if (!isApplicationKey(name)) continue;
    // Trimmed and joined as Headers would.
    const value = headers[key];
    metadata.add(
      name,
      typeof value === "string" ? value.trim() : (value ?? []).map((v) => v.trim()).join(", "),
    );
  }
  return metadata;
}

function isRecord(headers: HeadersInit): headers is Record<string, string | readonly string[]> {
  return (
    !(headers instanceof Headers) && typeof (headers as Iterable<unknown>)[Symbol.iterator] !== "function"
  );
}
