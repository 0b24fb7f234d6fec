import { HTML5_ENTITIES, INVALID_CHARREFS, INVALID_CODEPOINTS } from "./html5-entities.js";

/** CPython's `html._charref`: numeric references, and names of up to 32 characters, each with an optional ';'. */
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

const has = (name: string) => Object.hasOwn(HTML5_ENTITIES, name);

/**
 * Python's `html.unescape`: every named and numeric character reference decoded as the HTML5 parser does in
 * text, legacy names without ';' by their longest known prefix, invalid code points replaced or dropped.
 */
export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(CHARREF, (_match, ref: string) => {
    if (ref[0] === "#") {
      const hex = ref[1] === "x" || ref[1] === "X";
      const digits = ref.slice(hex ? 2 : 1).replace(/;$/, "");
      const num = Number.parseInt(digits, hex ? 16 : 10);
      const replaced = INVALID_CHARREFS.get(num);
      if (replaced !== undefined) return replaced;
      if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return "\uFFFD";
      if (INVALID_CODEPOINTS.has(num)) return "";
      return String.fromCodePoint(num);
    }
    if (has(ref)) return HTML5_ENTITIES[ref] as string;
    for (let end = ref.length - 1; end > 1; end--) {
      const prefix = ref.slice(0, end);
      if (has(prefix)) return (HTML5_ENTITIES[prefix] as string) + ref.slice(end);
    }
    return `&${ref}`;
  });
}

/** Named references that ftfy also decodes in upper case (P&EACUTE;REZ): the lower-case names whose upper case is not one. */
let upperCaseEntities: Map<string, string> | undefined;

/**
 * ftfy's `unescape_html`: only references that end in ';' (the unambiguous ones), names as the HTML5 table has
 * them or upper-cased, numeric ones when `html.unescape` consumes them whole.
 */
export function ftfyUnescapeHtml(text: string): string {
  upperCaseEntities ??= buildUpperCaseEntities();
  const upper = upperCaseEntities;
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (entity) => {
    const name = entity.slice(1);
    if (has(name)) return HTML5_ENTITIES[name] as string;
    const folded = upper.get(entity);
    if (folded !== undefined) return folded;
    if (entity.startsWith("&#")) {
      const decoded = htmlUnescape(entity);
      return decoded.includes(";") ? entity : decoded;
    }
    return entity;
  });
}

function buildUpperCaseEntities(): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, char] of Object.entries(HTML5_ENTITIES)) {
    if (!name.endsWith(";") || name !== name.toLowerCase()) continue;
    const entity = `&${name.toUpperCase()}`;
    if (htmlUnescape(entity) === entity) map.set(entity, char.toUpperCase());
  }
  return map;
}
