/** One instruction with its continuation lines joined, e.g. `{ keyword: "COPY", args: "--from=build /out /app" }`. */
export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  /** The `AS` name, or its index as a string when unnamed. */
  name: string;
  base: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** `ARG`s before the first `FROM` (the only ones a `FROM` line may use). */
  globalArgs: Map<string, string>;
  stages: Stage[];
}

/** The Dockerfile subset the images use: instructions, `\` continuations, comments, `FROM … AS name`. */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = "";
    const match = /^(\w+)\s+(.*)$/s.exec(full);
    if (!match) throw new Error(`not an instruction: ${full}`);
    instructions.push({ keyword: (match[1] ?? "").toUpperCase(), args: (match[2] ?? "").trim() });
  }
  if (pending !== "") throw new Error("the Dockerfile ends inside a continued instruction");

  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const [base = "", as, name] = ins.args.split(/\s+/);
      stages.push({
        name: as?.toUpperCase() === "AS" && name ? name : String(stages.length),
        base,
        instructions: [],
      });
    } else if (stages.length === 0) {
      if (ins.keyword !== "ARG") throw new Error(`${ins.keyword} before the first FROM`);
      const [key = "", value = ""] = ins.args.split("=", 2);
      globalArgs.set(key, value);
    } else stages.at(-1)?.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** Substitutes `${NAME}` and `$NAME` from the given values (default values of global ARGs). */
export function expandArgs(text: string, values: Map<string, string>): string {
  return text.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (whole, braced: string, bare: string) => values.get(braced ?? bare) ?? whole,
  );
}

/** The last value an instruction sets in a stage, e.g. the final `USER`. */
export function lastArgs(stage: Stage, keyword: string): string | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
}

/** `ENV A=1 B=2` instructions of a stage, merged. */
export function stageEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of stage.instructions.filter((i) => i.keyword === "ENV")) {
    for (const pair of ins.args.split(/\s+/)) {
      const eq = pair.indexOf("=");
      if (eq > 0) env.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  }
  return env;
}

/**
 * Whether `.dockerignore` keeps a path out of the build context: the pattern subset used here (`**`,
 * `*`, plain paths; a pattern excludes the path and everything under it). `!` exceptions are refused.
 */
export function isDockerignored(path: string, dockerignore: string): boolean {
  const patterns = dockerignore
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  return patterns.some((pattern) => {
    if (pattern.startsWith("!")) throw new Error(`unsupported .dockerignore exception: ${pattern}`);
    const regex = pattern
      .replace(/^\/+/, "")
      .split("**/")
      .map((part) => part.replace(/[.+?^(){}|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*"))
      .join("(?:.*/)?");
    return new RegExp(`^${regex}(?:/.*)?$`).test(path);
  });
}
