import { commonSettings, parse, parseOrigin } from "@dmesh/runtime";
import { parseTenantQuotas } from "./sessions/tenant-quotas.js";
import { parseTenantSecrets } from "./webhooks/webhook-policy.js";

/** Every setting of the orchestrator; the README's table is `configTable(orchestratorSettings)`. */
export const orchestratorSettings = {
  ...commonSettings,
  port: {
    env: "PORT",
    description: "gRPC, Connect and gRPC-Web port (HTTP/1.1 and h2c)",
    default: 50051,
    parse: parse.int(0, 65535),
  },
  inferenceUrls: {
    env: "INFERENCE_URLS",
    description: "inference replicas, host:port list (dns:///name:port resolves every address)",
    default: ["127.0.0.1:50052"],
    parse: parse.addresses,
  },
  postprocessUrls: {
    env: "POSTPROCESS_URLS",
    description: "postprocess replicas, host:port list (dns:///name:port resolves every address)",
    default: ["127.0.0.1:50053"],
    parse: parse.addresses,
  },
  deviceUrls: {
    env: "DEVICE_URLS",
    description: "device services to report in mesh status, host:port list",
    default: ["127.0.0.1:50054"],
    parse: parse.addresses,
  },
  dataDir: {
    env: "DATA_DIR",
    description: "SQLite state and artifact files",
    default: ".dmesh/data",
    parse: parse.string,
  },
  databaseUrl: {
    env: "DATABASE_URL",
    description:
      "postgres://user:password@host:port/db: state in PostgreSQL, shared by every replica (artifact files stay in DATA_DIR: a volume every replica mounts); empty = SQLite in DATA_DIR",
    default: "",
    parse: parse.string,
  },
  orchestratorLeaseMs: {
    env: "ORCHESTRATOR_LEASE_MS",
    description:
      "with DATABASE_URL: how long a replica's sessions stay its own without a heartbeat (renewed every third of it); once it runs out another replica adopts them and resumes them from their checkpoints",
    default: 10_000,
    parse: parse.int(500, 600_000),
  },
  maxConcurrentSessions: {
    env: "MAX_CONCURRENT_SESSIONS",
    description: "sessions executing at once",
    default: 4,
    parse: parse.int(1, 1024),
  },
  maxQueuedSessions: {
    env: "MAX_QUEUED_SESSIONS",
    description: "sessions waiting before submits get RESOURCE_EXHAUSTED",
    default: 1000,
    parse: parse.int(1, 1_000_000),
  },
  maxAttempts: {
    env: "MAX_ATTEMPTS",
    description: "inference attempts per step before a session fails",
    default: 3,
    parse: parse.int(1, 20),
  },
  checkpointIntervalSteps: {
    env: "CHECKPOINT_INTERVAL_STEPS",
    description: "denoising steps between stored checkpoints",
    default: 1,
    parse: parse.int(1, 1000),
  },
  retryBackoffMs: {
    env: "RETRY_BACKOFF_MS",
    description:
      "wait before retrying a failed call when no other healthy replica is left; doubles per attempt (capped at 10 s)",
    default: 250,
    parse: parse.int(0, 60_000),
  },
  streamIdleTimeoutMs: {
    env: "STREAM_IDLE_TIMEOUT_MS",
    description: "a generation stream silent this long (a hung replica) is abandoned and retried elsewhere",
    default: 120_000,
    parse: parse.int(100, 3_600_000),
  },
  discoveryIntervalMs: {
    env: "DISCOVERY_INTERVAL_MS",
    description: "how often dns:/// replica entries are resolved again",
    default: 10_000,
    parse: parse.int(100, 3_600_000),
  },
  callTimeoutMs: {
    env: "CALL_TIMEOUT_MS",
    description: "deadline of each unary call to a domain service",
    default: 60_000,
    parse: parse.int(100, 3_600_000),
  },
  replicaLostAfterMs: {
    env: "REPLICA_LOST_AFTER_MS",
    description:
      "a replica that health checks cannot reach for this long has its calls in flight aborted, so that their sessions retry elsewhere (a cut link otherwise holds them until keepalive, ~45 s); model runs no longer hold a replica's event loop (they run on worker threads), but keep it above the longest JavaScript work that still does (merging a large LoRA set: seconds)",
    default: 15_000,
    parse: parse.int(100, 3_600_000),
  },
  healthIntervalMs: {
    env: "HEALTH_INTERVAL_MS",
    description: "how often replicas are health-checked",
    default: 2000,
    parse: parse.int(100, 600_000),
  },
  batchGroupMax: {
    env: "BATCH_GROUP_MAX",
    description:
      "most images of compatible batch items sent together to one inference replica to share UNet runs; fewer where the replica's MAX_UNET_BATCH, MAX_CONCURRENT_GENERATIONS or the free memory its device reports allow fewer (1 = no grouping)",
    default: 8,
    parse: parse.int(1, 64),
  },
  apiKeysFile: {
    env: "API_KEYS_FILE",
    description:
      "lines `TENANT SHA256_HEX_OF_KEY [admin]` (# comments); set = every call needs `authorization: Bearer KEY`, and each tenant sees only its own sessions, batches and artifacts; reloaded when it changes; empty = open, one default tenant",
    default: "",
    parse: parse.string,
  },
  tenantQuotas: {
    env: "TENANT_QUOTAS",
    description:
      "per-tenant limits, `;`-separated: `running=N,queued=N,batch_items=N` for every tenant, `TENANT:key=N,...` for one (e.g. `running=2,queued=100;acme:running=8`); unset limits are MAX_CONCURRENT_SESSIONS, MAX_QUEUED_SESSIONS and 1000 items",
    default: "",
    parse: (raw: string) => {
      parseTenantQuotas(raw);
      return raw;
    },
  },
  corsOrigins: {
    env: "CORS_ORIGINS",
    description:
      "comma-separated origins (`https://app.example.com`, or `*`) whose browser pages may call the Connect/gRPC-Web port",
    default: [] as string[],
    parse: parse.list(parseOrigin),
  },
  batchWindow: {
    env: "BATCH_WINDOW",
    description: "unfinished sessions one batch keeps in the queue",
    default: 8,
    parse: parse.int(1, 10_000),
  },
  webhookAllowedUrls: {
    env: "WEBHOOK_ALLOWED_URLS",
    description:
      "comma-separated URL prefixes a session's or batch's callback_url must start with (end each with `/` or a port); empty = webhooks off",
    default: [] as string[],
    parse: parse.list((prefix) => {
      const url = new URL(prefix);
      if (url.protocol !== "http:" && url.protocol !== "https:")
        throw new Error(`"${prefix}" is not http(s)`);
      return prefix;
    }),
  },
  webhookSecret: {
    env: "WEBHOOK_SECRET",
    description: "HMAC-SHA256 key of webhook signatures while API keys are off (16+ characters)",
    default: "",
    parse: (raw: string) => {
      if (raw && raw.length < 16) throw new Error("needs at least 16 characters");
      return raw;
    },
  },
  webhookTenantSecrets: {
    env: "WEBHOOK_TENANT_SECRETS",
    description:
      "each tenant's webhook signing key while API keys are on: `tenant=secret,...` (16+ characters each)",
    default: "",
    parse: (raw: string) => {
      parseTenantSecrets(raw);
      return raw;
    },
  },
  webhookMaxAttempts: {
    env: "WEBHOOK_MAX_ATTEMPTS",
    description: "POSTs per webhook delivery before it is given up",
    default: 8,
    parse: parse.int(1, 100),
  },
  webhookRetryMs: {
    env: "WEBHOOK_RETRY_MS",
    description: "wait before a failed webhook's second POST; doubles per attempt, at most 5 minutes",
    default: 1000,
    parse: parse.int(1, 300_000),
  },
  webhookTimeoutMs: {
    env: "WEBHOOK_TIMEOUT_MS",
    description: "one webhook POST's deadline",
    default: 10_000,
    parse: parse.int(100, 120_000),
  },
};
