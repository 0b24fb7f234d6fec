/** Width, height and text chunks of a PNG, read by hand (an independent reader, not our encoder). */
export function pngInfo(bytes: Uint8Array): { width: number; height: number; text: Record<string, string> } {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.readUInt32BE(0) !== 0x89504e47) throw new Error("not a PNG");
  const text: Record<string, string> = {};
  let width = 0;
  let height = 0;
  for (let i = 8; i < view.length; ) {
    const length = view.readUInt32BE(i);
    const type = view.toString("latin1", i + 4, i + 8);
    const data = view.subarray(i + 8, i + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    }
    if (type === "tEXt") {
      const nul = data.indexOf(0);
      text[data.toString("latin1", 0, nul)] = data.toString("latin1", nul + 1);
    }
    i += 12 + length;
  }
  return { width, height, text };
}
