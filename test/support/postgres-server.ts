import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "./free-ports.js";

/** A PostgreSQL server of its own for one test suite, in a temporary directory, on 127.0.0.1. */
export interface Postgres {
  /** postgres://… of the database `dmesh` on it. */
  readonly url: string;
  readonly port: number;
  /** Another empty database on the same server, for a test that needs a fresh one. */
  createDatabase(name: string): string;
  stop(): void;
}

const PG_ROOT = "/usr/lib/postgresql";

/** Debian's server binaries (the newest installed version), or undefined when there are none. */
export function postgresBin(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => existsSync(join(PG_ROOT, v, "bin", "pg_ctl")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(PG_ROOT, versions[0], "bin");
}

/** Why the PostgreSQL tests skip here, or undefined when they can run. */
export function postgresUnavailable(): string | undefined {
  if (!postgresBin()) return `no PostgreSQL server binaries under ${PG_ROOT} (apt-get install postgresql)`;
  if (process.getuid?.() === 0 && spawnSync("id", ["-u", "postgres"]).status !== 0)
    return "running as root without a postgres user to run the server as";
  return undefined;
}

/**
 * initdb and pg_ctl start in a fresh temporary directory, listening on a free port on 127.0.0.1 only, its
 * unix socket in that directory; as the postgres user when running as root (the server refuses root).
 * Trust authentication: nothing but this machine reaches it, and only for the suite's life.
 */
export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBin();
  if (!bin) throw new Error(postgresUnavailable());
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("no free port");
  const dir = mkdtempSync(join(tmpdir(), "dmesh-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const run = (tool: string, args: string[]) => {
    const command = asRoot ? "runuser" : join(bin, tool);
    const argv = asRoot ? ["-u", "postgres", "--", join(bin, tool), ...args] : args;
    const out = spawnSync(command, argv, { encoding: "utf8", timeout: 60_000 });
    if (out.status !== 0) throw new Error(`${tool} failed (${out.status}): ${out.stderr || out.stdout}`);
    return out.stdout;
  };
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  // Small and quick: fsync stays on (the stores' durability is what is tested), the rest is defaults.
  const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c max_connections=60`;
  run("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-o", options, "-w", "-t", "60", "start"]);
  const psql = join(bin, "psql");
  const sql = (statement: string) => {
    const out = spawnSync(
      psql,
      ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", statement],
      {
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    if (out.status !== 0) throw new Error(`psql failed: ${out.stderr}`);
  };
  const urlOf = (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`;
  sql("CREATE DATABASE dmesh");
  let stopped = false;
  return {
    url: urlOf("dmesh"),
    port,
    createDatabase(name: string) {
      sql(`CREATE DATABASE ${name}`);
      return urlOf(name);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "30", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
