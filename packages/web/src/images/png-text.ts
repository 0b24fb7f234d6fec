const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The uncompressed text chunks of a PNG (`tEXt` in Latin-1, `iTXt` in UTF-8), as AUTOMATIC1111 and our
 * postprocess service write the generation parameters. Empty for anything that is not a PNG.
 */
export function pngText(bytes: Uint8Array): Record<string, string> {
  const text: Record<string, string> = {};
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) return text;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder();
  for (let at = 8; at + 12 <= bytes.length; ) {
    const length = view.getUint32(at);
    const type = latin1.decode(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, Math.min(at + 8 + length, bytes.length));
    const nul = data.indexOf(0);
    if (type === "tEXt" && nul > 0) {
      text[latin1.decode(data.subarray(0, nul))] = latin1.decode(data.subarray(nul + 1));
    } else if (type === "iTXt" && nul > 0 && data[nul + 1] === 0) {
      // keyword NUL, compression flag 0, method, language NUL, translated keyword NUL, text
      const language = data.indexOf(0, nul + 3);
      const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
      if (translated >= 0)
        text[latin1.decode(data.subarray(0, nul))] = utf8.decode(data.subarray(translated + 1));
    } else if (type === "IEND") break;
    at += 12 + length;
  }
  return text;
}
