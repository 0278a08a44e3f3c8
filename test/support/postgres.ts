/**
 * A throwaway PostgreSQL cluster for tests: `initdb --auth=trust --no-sync`
 * in a temp directory (owned by `postgres` when the tests run as root, since
 * PostgreSQL refuses to run as root), started with `pg_ctl -w start` on a free
 * port, Unix socket in the same directory, listening on 127.0.0.1 only, and
 * stopped by the postmaster's PID. `postgresUnavailable()` says why no cluster
 * can start here (no binaries): tests skip for that reason only outside CI
 * (.ci/run installs Debian's `postgresql`, and under CI=true they run).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The directory holding initdb, pg_ctl and postgres, or undefined. */
export function postgresBinDir(): string | undefined {
  const candidates: string[] = [];
  if (existsSync('/usr/lib/postgresql')) {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join('/usr/lib/postgresql', v, 'bin'));
  }
  candidates.push('/usr/local/pgsql/bin', '/usr/local/bin', '/usr/bin');
  return candidates.find((dir) => ['initdb', 'pg_ctl', 'postgres'].every((tool) => existsSync(join(dir, tool))));
}

/** Why no PostgreSQL cluster can start here, or undefined when one can. */
export function postgresUnavailable(): string | undefined {
  if (!postgresBinDir()) return 'no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found (apt-get install postgresql)';
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status !== 0)
    return 'running as root and there is no `postgres` user to run the server as';
  return undefined;
}

/** Skip outside CI when PostgreSQL is missing; under CI=true the tests run (and fail loudly). */
export function skipPostgres(): string | false {
  const why = postgresUnavailable();
  if (why === undefined || process.env.CI === 'true') return false;
  return why;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

function ids(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export class PgCluster {
  readonly dir: string;
  readonly dataDir: string;
  readonly port: number;
  private readonly bin: string;
  private readonly owner: { uid: number; gid: number } | undefined;

  private constructor(dir: string, port: number, bin: string) {
    this.dir = dir;
    this.dataDir = join(dir, 'data');
    this.port = port;
    this.bin = bin;
    this.owner = ids();
  }

  /** initdb + start; resolves once the server accepts connections. */
  static async start(): Promise<PgCluster> {
    const bin = postgresBinDir();
    if (!bin) throw new Error(postgresUnavailable());
    const dir = mkdtempSync(join(tmpdir(), 'vecvault-pg-'));
    const cluster = new PgCluster(dir, await freePort(), bin);
    if (cluster.owner) chownSync(dir, cluster.owner.uid, cluster.owner.gid);
    cluster.run('initdb', ['-D', cluster.dataDir, '--auth=trust', '--no-sync', '-U', 'postgres', '-E', 'UTF8', '--locale=C']);
    cluster.startServer();
    return cluster;
  }

  private run(tool: string, args: string[]): string {
    return execFileSync(join(this.bin, tool), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: this.dir,
      ...(this.owner ? { uid: this.owner.uid, gid: this.owner.gid } : {}),
      env: { ...process.env, LC_ALL: 'C' },
    });
  }

  /** pg_ctl start (again after `kill`): the same data directory and port. */
  startServer(): void {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
    this.run('pg_ctl', ['-D', this.dataDir, '-o', opts, '-l', join(this.dir, 'server.log'), '-w', 'start']);
  }

  get connectionString(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A connection string for another database (created by `createDatabase`). */
  database(name: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${name}`;
  }

  psql(sql: string, database = 'postgres'): string {
    return execFileSync(
      'psql',
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', '-d', database, '-c', sql],
      {
        encoding: 'utf8',
      },
    );
  }

  createDatabase(name: string): string {
    this.psql(`CREATE DATABASE "${name}"`);
    return this.database(name);
  }

  /** The whole database as `pg_dump` writes it (plain SQL; bytea in hex). */
  dump(database = 'postgres'): string {
    return execFileSync('pg_dump', ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', database], { encoding: 'utf8', maxBuffer: 1 << 30 });
  }

  private pid(): number | undefined {
    try {
      return Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  }

  /** Stops the server by its PID (fast shutdown) and waits until it is gone. */
  async stopServer(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      return;
    }
    for (let i = 0; i < 300; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    process.kill(pid, 'SIGKILL');
  }

  async stop(): Promise<void> {
    await this.stopServer();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
