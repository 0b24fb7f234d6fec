import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";

/** The grpc-js serializers a plain grpc-js service over protobuf-es would use (a view of the bytes, no copy). */
export function protobufCodec<T extends DescMessage>(schema: T) {
  return {
    serialize: (msg: MessageShape<T>): Buffer => {
      const bytes = toBinary(schema, msg);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
    deserialize: (bytes: Buffer): MessageShape<T> => fromBinary(schema, bytes),
  };
}
