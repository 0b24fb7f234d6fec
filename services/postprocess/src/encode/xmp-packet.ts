/**
 * An XMP packet carrying the infotext as `exif:UserComment` (a language alternative, as the XMP
 * Exif schema defines it), for readers that look at XMP rather than EXIF.
 */
export function buildXmpPacket(infotext: string): string {
  return [
    '<?xpacket begin="\uFEFF" id="W5M0MpCehiHzreSzNTczkc9d"?>',
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
    '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/">',
    `<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">${escapeXml(infotext)}</rdf:li></rdf:Alt></exif:UserComment>`,
    "</rdf:Description>",
    "</rdf:RDF>",
    "</x:xmpmeta>",
    '<?xpacket end="w"?>',
  ].join("\n");
}

/** Escapes markup; characters XML 1.0 cannot carry at all become U+FFFD. */
function escapeXml(text: string): string {
  return text
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}
