import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClipTokenizer, loadClipTokenizer } from "../../src/tokenizer/clip-tokenizer.js";
import { CLIP_DATA_DIR, hasClipData, withClipData, writeSdxlTokenizer2Dir } from "./clip-data.js";

const BOS = 49406;
const EOS = 49407;
const padded = (ids: number[], pad: number, length = 77) => [
  ...ids,
  ...Array<number>(length - ids.length).fill(pad),
];

describe.skipIf(!hasClipData)(withClipData("CLIP tokenizer on the real CLIP vocabulary"), () => {
  let tokenizer: ClipTokenizer;
  let vocab: Record<string, number>;
  beforeAll(async () => {
    tokenizer = await loadClipTokenizer(CLIP_DATA_DIR);
    vocab = JSON.parse(readFileSync(join(CLIP_DATA_DIR, "vocab.json"), "utf8"));
  });

  it("agrees with vocab.json on the ids the cases below rely on", () => {
    // Read straight from the file, so the expectations below do not rest on the tokenizer itself.
    expect(vocab["<|startoftext|>"]).toBe(BOS);
    expect(vocab["<|endoftext|>"]).toBe(EOS);
    expect(vocab["cat</w>"]).toBe(2368);
    expect(vocab["a</w>"]).toBe(320);
    expect(vocab["photo</w>"]).toBe(1125);
    expect(vocab["of</w>"]).toBe(539);
    expect(vocab[",</w>"]).toBe(267);
    expect(vocab["!</w>"]).toBe(256);
    expect(vocab["!"]).toBe(0);
    expect(vocab["'s</w>"]).toBe(568);
    expect([vocab["1</w>"], vocab["9</w>"], vocab["8</w>"], vocab["7</w>"]]).toEqual([272, 280, 279, 278]);
    // "é" is UTF-8 C3 A9, spelled "Ã©" in the byte alphabet; 🐱 is F0 9F 90 B1, spelled "ðŁĲ±".
    expect(vocab["cafÃ©</w>"]).toBe(15304);
    expect(vocab["ðŁĲ±</w>"]).toBe(22979);
  });

  it("reads the special tokens and sizes of an SD tokenizer", () => {
    expect(tokenizer.bosId).toBe(BOS);
    expect(tokenizer.eosId).toBe(EOS);
    expect(tokenizer.padId).toBe(EOS);
    expect(tokenizer.unkId).toBe(EOS);
    expect(tokenizer.vocabSize).toBe(49408);
    expect(tokenizer.modelMaxLength).toBe(77);
    expect(tokenizer.tokenToId(",</w>")).toBe(267);
  });

  it('tokenizes "a photo of a cat" as diffusers feeds the text encoder', () => {
    const { ids, attentionMask, truncated } = tokenizer.tokenize("a photo of a cat");
    expect(Array.from(ids)).toEqual(padded([BOS, 320, 1125, 539, 320, 2368, EOS], EOS));
    expect(Array.from(attentionMask)).toEqual(padded([1, 1, 1, 1, 1, 1, 1], 0));
    expect(truncated).toBe(false);
  });

  // Expected ids from OpenAI's own tokenizer: clip/simple_tokenizer.py of github.com/openai/CLIP (d05afc4)
  // with ftfy 6.3.1 and the regex module, run by scripts/clip-reference-ids.py.
  it.each([
    ["punctuation", "Hello, world!", [3306, 267, 1002, 256]],
    ["numbers, one digit per token", "born in 1987", [2683, 530, 272, 280, 279, 278]],
    ["'s as its own token", "it's the cat's toy", [585, 568, 518, 2368, 568, 5988]],
    ["accented letters as UTF-8 byte symbols", "café", [15304]],
    ["emoji", "a cat 🐱", [320, 2368, 22979]],
    [
      "runs of whitespace, tabs and newlines",
      "a   photo \u0009 of\u000a a    cat",
      [320, 1125, 539, 320, 2368],
    ],
    ["upper case", "A PHOTO OF A CAT", [320, 1125, 539, 320, 2368]],
    ["HTML entities decoded (ftfy, then html.unescape twice)", "fish &amp; chips", [2759, 261, 8855]],
    ["doubly escaped entities decoded too", "fish &amp;amp; chips", [2759, 261, 8855]],
    [
      "curly-quote entities, decoded and then uncurled",
      "it&rsquo;s a &ldquo;test&rdquo;",
      [585, 568, 320, 257, 1628, 257],
    ],
    [
      "upper-case, legacy and numeric entities",
      "P&EACUTE;REZ &copy 2024 &#39;quoted&#x27;",
      [43167, 15192, 5811, 273, 271, 273, 275, 262, 27706, 262],
    ],
    [
      "markup: ftfy leaves entities to html.unescape",
      "<b>bold</b> &amp; more",
      [283, 321, 285, 8911, 34308, 321, 285, 261, 750],
    ],
    ["a CJK ideograph", "猫", [163, 234, 360]],
    [
      "a Japanese phrase: a CJK run is one word",
      "日本の桜の木、春",
      [39121, 44353, 21575, 162, 43991, 21575, 19277, 357, 45262, 42891, 354],
    ],
    [
      "a Chinese sentence as one word",
      "一只可爱的猫在草地上",
      [
        19759, 222, 34517, 103, 34517, 107, 163, 230, 109, 163, 248, 226, 163, 234, 104, 37746, 101, 164, 235,
        231, 37746, 108, 19759, 488,
      ],
    ],
    [
      "Japanese with katakana and ideographic punctuation",
      "东京タワー、夜景。",
      [19759, 250, 21078, 105, 34941, 2429, 107, 30391, 45262, 23170, 250, 48132, 363, 38000],
    ],
    ["Korean", "귀여운 고양이", [42680, 222, 13252, 105, 18541, 368, 36216, 254, 31625, 239, 34746]],
    ["Cyrillic", "кот на траве", [27152, 13506, 141, 480, 22705, 27080, 17875, 16370, 31090, 110, 140, 369]],
    [
      "Greek, with a final sigma when lower-cased",
      "ΣΟΦΟΣ σοφος",
      [139, 225, 138, 123, 139, 228, 138, 123, 139, 480, 139, 225, 138, 123, 139, 228, 138, 123, 139, 480],
    ],
    ["ß and dotted capital I", "straße İstanbul", [1894, 127, 253, 324, 328, 16384, 11231]],
    [
      "control characters removed, C1 as Windows-1252, zero-width space kept",
      "a\u0000b\u200bc\ufeffd\u0085e\u000bf",
      [3937, 9844, 4480, 959, 1829],
    ],
    ["curly quotes straightened", "„curly“ ‘single’ quotes", [257, 20795, 257, 568, 17005, 262, 5808]],
    ["Latin ligatures split", "ﬁne ﬂowers", [3797, 4023]],
    [
      "fullwidth forms and the ideographic space narrowed",
      "ＦＵＬＬ\u3000ＷＩＤＴＨ，ｔｅｘｔ！",
      [1476, 23571, 267, 4160, 256],
    ],
    ["halfwidth katakana widened", "ﾊﾝｶｸ katakana", [2429, 237, 17671, 37367, 3909, 363, 2844, 819, 1388]],
    ["combining accents composed (NFC)", "é combining", [4166, 23561]],
    ["line breaks of every kind", "line one\u000d\u000aline two\u2028three", [1148, 637, 1148, 1237, 2097]],
    ["terminal escapes removed", "\u001b[31mred\u001b[0m text", [736, 4160]],
    ["no-break and ideographic spaces", "non\u00a0breaking\u3000spaces", [3353, 2755, 9006]],
    ["an emoji outside the BMP", "🌸 cherry blossom", [10980, 7325, 14472]],
    ["a literal <|endoftext|>", "a cat<|endoftext|>a dog", [320, 2368, EOS, 320, 1929]],
    [
      "an A1111-style prompt",
      "masterpiece, best quality, (ultra detailed:1.2), 8k, hdr",
      [12066, 267, 949, 3027, 267, 263, 8118, 12609, 281, 272, 269, 273, 2361, 279, 330, 267, 28065],
    ],
  ])("encodes %s", (_name, text, expected) => {
    expect(tokenizer.encode(text)).toEqual(expected);
  });

  it("truncates a 100-word prompt to 77 ids keeping EOS last", () => {
    const words =
      "a majestic red fox standing in a snowy forest at dawn with soft golden light filtering through tall pine trees";
    const prompt = Array(10).fill(words).join(" ").split(" ").slice(0, 100).join(" ");
    const all = tokenizer.encode(prompt);
    expect(all).toHaveLength(100);
    expect(all.slice(0, 6)).toEqual([320, 15335, 736, 3240, 2862, 530]);

    const { ids, attentionMask, truncated } = tokenizer.tokenize(prompt);
    expect(truncated).toBe(true);
    expect(ids).toHaveLength(77);
    expect(Array.from(ids)).toEqual([BOS, ...all.slice(0, 75), EOS]);
    expect(attentionMask.every((m) => m === 1)).toBe(true);
  });

  it("decodes ids back to lower-cased text", () => {
    const { ids } = tokenizer.tokenize("Hello, World!");
    expect(tokenizer.decode(ids, { skipSpecialTokens: true })).toBe("hello , world !");
    expect(tokenizer.decode([BOS, 15304, 22979, EOS])).toBe("<|startoftext|>café 🐱 <|endoftext|>");
    expect(() => tokenizer.decode([49408])).toThrow(/unknown token id 49408/);
  });
});

describe.skipIf(!hasClipData)(withClipData("SDXL tokenizer_2 (pad token '!')"), () => {
  let dir: string;
  let tokenizer: ClipTokenizer;
  beforeAll(async () => {
    dir = await writeSdxlTokenizer2Dir();
    tokenizer = await loadClipTokenizer(dir);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("pads with id 0", () => {
    expect(tokenizer.padId).toBe(0);
    expect(Array.from(tokenizer.tokenize("a photo of a cat").ids)).toEqual(
      padded([BOS, 320, 1125, 539, 320, 2368, EOS], 0),
    );
  });

  it('cuts every "!" out as the pad token, as Hugging Face does (diffusers issue #4153)', () => {
    expect(Array.from(tokenizer.tokenize("! !! !!!").ids)).toEqual(padded([BOS, 0, 0, 0, 0, 0, 0, EOS], 0));
  });
});
