/** A command shown in a ```console block of a Markdown file (`$ command`), with the output shown under it. */
export interface ShownCommand {
  /** The command, continuation lines (ending in `\`) joined with a space, without its trailing comment. */
  readonly command: string;
  /** The comment after ` # ` on the command line, if any (the README's note about what it does). */
  readonly comment: string;
  readonly shownOutput: readonly string[];
}

/** Every ```console block, in order, each as its commands. */
export function consoleBlocks(markdown: string): ShownCommand[][] {
  const blocks: ShownCommand[][] = [];
  for (const [, body = ""] of markdown.matchAll(/^```console\n([\s\S]*?)^```$/gm)) {
    const commands: { lines: string[]; output: string[] }[] = [];
    let continued = false;
    for (const line of body.split("\n")) {
      const current = commands.at(-1);
      if (line.startsWith("$ ")) commands.push({ lines: [line.slice(2)], output: [] });
      else if (continued && current) current.lines.push(line.trim());
      else if (current && line.trim() !== "") current.output.push(line.trimEnd());
      continued = /\\$/.test(line);
    }
    blocks.push(
      commands.map(({ lines, output }) => {
        const text = lines.map((l) => l.replace(/\s*\\$/, "")).join(" ");
        const comment = /\s+#\s(.*)$/.exec(text);
        return {
          command: (comment ? text.slice(0, comment.index) : text).trim(),
          comment: comment?.[1]?.trim() ?? "",
          shownOutput: output,
        };
      }),
    );
  }
  return blocks;
}

/**
 * What an output line shown in the README promises, as a pattern for the real line: the same words, any
 * numbers (sizes, times, ports, steps) and session ids; `.dmesh/` paths under any directory; a progress bar
 * (`label [#####] 3/20`, drawn on a terminal) as the plain `label 3/20` line it prints elsewhere, a full
 * one (20/20) as a full count.
 */
export function lineShape(shown: string): RegExp {
  const bar = /^(\S+) \[[#.]+\] ((\d+)\/(\d+))(.*)$/.exec(shown.trim());
  // A finished bar (20/20) promises a finished count, whatever the total.
  const count = "@@count@@";
  const finished = bar && bar[3] === bar[4];
  const text = bar ? `${bar[1]} ${finished ? count : bar[2]}${bar[5]}` : shown.trim();
  const pattern = text
    .split(/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+(?:\.\d+)?|\s+|\.dmesh\/)/)
    .map((part, i) => {
      if (i % 2 === 0) return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      if (/^\s+$/.test(part)) return "\\s+";
      if (part === ".dmesh/") return "(?:\\S*/)?\\.dmesh/";
      if (part.includes("-")) return "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
      return "\\d+(?:\\.\\d+)?";
    })
    .join("")
    .replace(count, "(\\d+)/\\1");
  return new RegExp(`^${pattern}${bar ? "(?:\\s.*)?" : ""}$`);
}

/**
 * Matches the shown lines, in order, against lines of the real output (which may have more: progress,
 * logs); returns the real line each matched, or says which shown line it could not find.
 */
export function matchShown(
  shown: readonly string[],
  output: string,
): { matched: string[] } | { missing: string } {
  const lines = output.split(/\r?\n/).map((l) => l.trimEnd());
  const matched: string[] = [];
  let from = 0;
  for (const line of shown) {
    const shape = lineShape(line);
    const at = lines.findIndex((real, i) => i >= from && shape.test(real));
    if (at < 0) return { missing: line };
    matched.push(lines[at] ?? "");
    from = at + 1;
  }
  return { matched };
}
