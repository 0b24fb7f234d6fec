/** One configuration setting: read from an environment variable or the matching `--flag`. */
export interface Setting<T> {
  readonly env: string;
  readonly description: string;
  /** Used when neither the variable nor the flag is given; absent = required. */
  readonly default?: T;
  readonly parse: (raw: string) => T;
}

// biome-ignore lint/suspicious/noExplicitAny: a table of settings of any value type
export type Settings = Record<string, Setting<any>>;
export type ConfigOf<S extends Settings> = { readonly [K in keyof S]: ReturnType<S[K]["parse"]> };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

/** `LOG_LEVEL` is also `--log-level`. */
export function flagFor(env: string): string {
  return `--${env.toLowerCase().replaceAll("_", "-")}`;
}

/**
 * Reads every setting from flags (winning) and the environment, and fails listing every problem at once
 * rather than the first, so that a misconfigured pod says all it needs in one crash.
 */
export function loadConfig<S extends Settings>(
  settings: S,
  env: Record<string, string | undefined> = process.env,
  argv: readonly string[] = process.argv.slice(2),
): ConfigOf<S> {
  const flags = parseFlags(argv);
  const problems: string[] = [];
  const known = new Set(Object.values(settings).map((s) => flagFor(s.env)));
  for (const flag of flags.keys()) {
    if (!known.has(flag)) problems.push(`${flag}: unknown flag`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    const raw = flags.get(flagFor(setting.env)) ?? env[setting.env];
    if (raw === undefined || raw === "") {
      if ("default" in setting) out[key] = setting.default;
      else problems.push(`${setting.env}: required (${setting.description})`);
      continue;
    }
    try {
      out[key] = setting.parse(raw);
    } catch (err) {
      problems.push(`${setting.env}: ${(err as Error).message} (got "${raw}")`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (!arg.startsWith("--")) continue;
    const eq = arg.indexOf("=");
    if (eq > 0) flags.set(arg.slice(0, eq), arg.slice(eq + 1));
    else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        flags.set(arg, next);
        i++;
      } else flags.set(arg, "true");
    }
  }
  return flags;
}

/** A Markdown table of the settings, for READMEs and `--help`. */
export function configTable(settings: Settings): string {
  const rows = Object.values(settings).map(
    (s) =>
      `| \`${s.env}\` | \`${flagFor(s.env)}\` | ${"default" in s ? `\`${String(s.default)}\`` : "required"} | ${s.description} |`,
  );
  return ["| variable | flag | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

export const parse = {
  string: (raw: string) => raw,
  int:
    (min: number, max: number) =>
    (raw: string): number => {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max)
        throw new Error(`must be an integer in [${min}, ${max}]`);
      return n;
    },
  bool: (raw: string): boolean => {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new Error("must be true or false");
  },
  oneOf:
    <T extends string>(...values: T[]) =>
    (raw: string): T => {
      if (!values.includes(raw as T)) throw new Error(`must be one of ${values.join(", ")}`);
      return raw as T;
    },
  /** Comma-separated entries, trimmed, empty ones dropped, each checked (or turned into a value) by `item`. */
  list:
    <T>(item: (entry: string) => T) =>
    (raw: string): T[] =>
      raw
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map(item),
  /** Comma-separated host:port addresses (a `dns:///name:port` entry is resolved to every address). */
  addresses: (raw: string): string[] => {
    const list = parse.list((a) => a)(raw);
    for (const a of list) {
      if (!/^(dns:\/\/\/)?[\w.-]+:\d{1,5}$|^\[[\da-f:]+\]:\d{1,5}$/i.test(a))
        throw new Error(`"${a}" is not host:port`);
    }
    if (list.length === 0) throw new Error("needs at least one host:port");
    return list;
  },
};

/** Settings every service shares. */
export const commonSettings = {
  host: { env: "HOST", description: "address to listen on", default: "127.0.0.1", parse: parse.string },
  logLevel: {
    env: "LOG_LEVEL",
    description: "pino log level",
    default: "info",
    parse: parse.oneOf("fatal", "error", "warn", "info", "debug", "trace", "silent"),
  },
  maxMessageBytes: {
    env: "MAX_MESSAGE_BYTES",
    description: "largest gRPC message accepted or sent",
    default: 64 * 1024 * 1024,
    parse: parse.int(1024, 512 * 1024 * 1024),
  },
  shutdownGraceMs: {
    env: "SHUTDOWN_GRACE_MS",
    description: "time streams get to drain on SIGTERM before they are cut",
    default: 10_000,
    parse: parse.int(0, 600_000),
  },
  tlsCertFile: {
    env: "TLS_CERT_FILE",
    description: "PEM certificate (chain) the listener presents; empty = plaintext; reloaded when it changes",
    default: "",
    parse: parse.string,
  },
  tlsKeyFile: {
    env: "TLS_KEY_FILE",
    description: "PEM private key of TLS_CERT_FILE",
    default: "",
    parse: parse.string,
  },
  tlsClientCaFile: {
    env: "TLS_CLIENT_CA_FILE",
    description: "with TLS: clients must present a certificate signed by these PEM CAs (mutual TLS)",
    default: "",
    parse: parse.string,
  },
  tlsCaFile: {
    env: "TLS_CA_FILE",
    description: "PEM CAs this service's calls to other services verify them with; set = those calls use TLS",
    default: "",
    parse: parse.string,
  },
  tlsClientCertFile: {
    env: "TLS_CLIENT_CERT_FILE",
    description: "PEM certificate this service's calls present (mutual TLS); empty = none",
    default: "",
    parse: parse.string,
  },
  tlsClientKeyFile: {
    env: "TLS_CLIENT_KEY_FILE",
    description: "PEM private key of TLS_CLIENT_CERT_FILE",
    default: "",
    parse: parse.string,
  },
  tlsServerName: {
    env: "TLS_SERVER_NAME",
    description:
      "name this service's calls expect in the servers' certificates (replicas found by DNS are dialled by address); empty = the host dialled",
    default: "",
    parse: parse.string,
  },
  metricsPort: {
    env: "METRICS_PORT",
    description:
      "HTTP port serving Prometheus `/metrics` (0 = any free port; -1 = none, and the gRPC-only services then record no gRPC metrics); the orchestrator also answers `/metrics` on its PORT",
    default: -1,
    parse: parse.int(-1, 65535),
  },
  otlpEndpoint: {
    env: "OTEL_EXPORTER_OTLP_ENDPOINT",
    description:
      "OpenTelemetry collector (OTLP/HTTP) base URL; spans go to `<url>/v1/traces`; empty = tracing off, at no cost (the standard `OTEL_*` variables tune it)",
    default: "",
    parse: (raw: string) => {
      if (!/^https?:\/\/[^\s/]+/.test(raw)) throw new Error("must be an http:// or https:// URL");
      return raw;
    },
  },
} satisfies Settings;
