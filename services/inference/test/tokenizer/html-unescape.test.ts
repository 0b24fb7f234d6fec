import { describe, expect, it } from "vitest";
import { ftfyUnescapeHtml, htmlUnescape } from "../../src/tokenizer/html-unescape.js";

// [input, CPython 3.11 html.unescape(input), ftfy 6.3.1 fixes.unescape_html(input)], computed with both.
const CASES: [string, string, string][] = [
  ["&notit;", "\u00acit;", "&notit;"],
  ["&#0;", "\ufffd", "\ufffd"],
  ["&#x110000;", "\ufffd", "\ufffd"],
  ["&#1;", "", ""],
  ["&amp", "&", "&amp"],
  ["&ampersand", "&ersand", "&ampersand"],
  ["&#128;", "\u20ac", "\u20ac"],
  ["&#xd800;", "\ufffd", "\ufffd"],
  ["&lt;b&gt;", "<b>", "<b>"],
  ["&Eacute &eacute;", "\u00c9 \u00e9", "&Eacute \u00e9"],
  ["&#65;&#x42;&#x43", "ABC", "AB&#x43"],
  ["&unknown;", "&unknown;", "&unknown;"],
  ["&;", "&;", "&;"],
  ["& amp;", "& amp;", "& amp;"],
  ["&AMP;", "&", "&"],
  ["&EACUTE;", "&EACUTE;", "\u00c9"],
  ["&NTILDE; &nTILDE;", "&NTILDE; &nTILDE;", "\u00d1 &nTILDE;"],
  ["&#99999999999;", "\ufffd", "\ufffd"],
];

describe("HTML character references", () => {
  it.each(CASES)("%j: html.unescape and ftfy's unescape_html", (input, python, ftfy) => {
    expect(htmlUnescape(input)).toBe(python);
    expect(ftfyUnescapeHtml(input)).toBe(ftfy);
  });
});
