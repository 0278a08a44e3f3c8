#!/usr/bin/env node
/**
 * `vecvault`: the command line (docs/cli.md; flag names are the contract of
 * DESIGN §8). Every command opens the store, does one thing and closes it.
 * With `--json`, stdout carries exactly one JSON document; logs and progress
 * go to stderr. Errors print `CODE: message` on stderr with the exit codes of
 * `output.ts`. Key material is never printed, except by `keygen` without
 * `--out`, whose output is the key.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { Client } from '../api/client.js';
import type { EncryptedIndex } from '../api/encrypted-index.js';
import { recoverIndex } from '../api/recover.js';
import type { Filter, GetInclude, QueryInclude, VectorItem } from '../api/types.js';
import type { KmsRegistry } from '../keys/kms/types.js';
import type { Permission } from '../keys/users.js';
import { NotSupportedError, ValidationError, VecvaultError } from '../errors.js';
import { ioError } from '../storage/io-errors.js';
import { EXIT, progressBar, reportError, toJson } from './output.js';
import { formatOf, readRows, type ImportRow } from './readers.js';

interface Common {
  path?: string;
  index?: string;
  keyFile?: string;
  kmsConfig?: string;
  kmsName?: string;
  /** Open as this user: the key (--key-file / VECVAULT_INDEX_KEY) is the user's key. */
  userId?: string;
  json?: boolean;
}

const usage = (message: string, path?: string) => new ValidationError(message, path === undefined ? undefined : { path });

/** Where the result goes: one JSON document under --json, text otherwise. */
function emit(opts: Common, value: unknown, text: () => string): void {
  process.stdout.write(opts.json ? `${toJson(value)}\n` : text());
}

// ---- keys ----

const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/** A key file: 32 raw bytes or 64 hex characters (a trailing newline is fine). Never echoed. */
function readKeyFile(file: string, flag: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (cause) {
    throw ioError(`read the key file ${file}`, cause);
  }
  if (bytes.byteLength === 32) return new Uint8Array(bytes);
  const text = bytes.toString('latin1').trim();
  bytes.fill(0);
  if (HEX_KEY.test(text)) return new Uint8Array(Buffer.from(text, 'hex'));
  throw usage(`The key file ${file} must hold 32 raw bytes or 64 hex characters.`, flag);
}

/** The index key from --key-file or VECVAULT_INDEX_KEY (hex), or undefined when neither is given. Never echoed. */
function optionalKey(opts: Common): Uint8Array | undefined {
  if (opts.keyFile !== undefined) return readKeyFile(opts.keyFile, '--key-file');
  const env = process.env.VECVAULT_INDEX_KEY;
  if (env !== undefined && env !== '') {
    if (HEX_KEY.test(env.trim())) return new Uint8Array(Buffer.from(env.trim(), 'hex'));
    throw usage('VECVAULT_INDEX_KEY must be 64 hex characters (32 bytes).', 'VECVAULT_INDEX_KEY');
  }
  return undefined;
}

/** The index key from --key-file (32 raw bytes or 64 hex characters) or VECVAULT_INDEX_KEY (hex). Never echoed. */
function readKey(opts: Common): Uint8Array {
  const key = optionalKey(opts);
  if (key) return key;
  throw usage('No index key: pass --key-file FILE or set VECVAULT_INDEX_KEY (64 hex characters). Make one with `vecvault keygen --out FILE`.', '--key-file');
}

/**
 * The KMS registry of --kms-config: a JSON file `{ "<slot>": { "provider": "pkcs11" | "aws-kms" |
 * "aws-secrets-manager", … } }` with the slot fields of docs/key-sources.md (a `custom` slot needs
 * code: use the API). Undefined without the flag; --kms-name needs it.
 */
function readKmsConfig(opts: Common): KmsRegistry | undefined {
  if (opts.kmsConfig === undefined) {
    if (opts.kmsName !== undefined) throw usage('--kms-name needs --kms-config FILE (the JSON registry of KMS slots).', '--kms-config');
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(opts.kmsConfig, 'utf8');
  } catch (cause) {
    throw ioError(`read the KMS configuration ${opts.kmsConfig}`, cause);
  }
  // `{ "env": "NAME" }` stands for an environment variable, so a PIN or secret need not sit in the file.
  const registry = resolveEnvReferences(parseJson(text, '--kms-config'), 'kms');
  if (typeof registry !== 'object' || registry === null || Array.isArray(registry)) {
    throw usage(`${opts.kmsConfig} must hold a JSON object: slot name → { "provider": …, … }.`, '--kms-config');
  }
  return registry as KmsRegistry;
}

/** `{ "env": "NAME" }` anywhere in the KMS configuration stands for that environment variable (a PIN, a secret key). */
function resolveEnvReferences(value: unknown, path: string): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvReferences(v, `${path}[${i}]`));
  const entries = Object.entries(value);
  if (entries.length === 1 && entries[0]![0] === 'env' && typeof entries[0]![1] === 'string') {
    const name = entries[0]![1];
    const resolved = process.env[name];
    if (resolved === undefined) throw usage(`${path} names the environment variable ${name}, which is not set.`, path);
    return resolved;
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, resolveEnvReferences(v, `${path}.${k}`)]));
}

/** How the command opens (or creates) its index: with the key, or through a KMS slot of --kms-config. */
function keySource(opts: Common): { kms?: KmsRegistry; indexKey?: Uint8Array; kmsName?: string } {
  if (opts.userId !== undefined) {
    // A user key is raw whatever the index's key source: no KMS call (docs/key-sources.md, per-user keys).
    if (opts.userId === '') throw usage('--user-id must not be empty.', '--user-id');
    if (opts.kmsName !== undefined || opts.kmsConfig !== undefined) {
      throw usage("--user-id opens with the user's key (--key-file / VECVAULT_INDEX_KEY): leave out --kms-config and --kms-name.", '--user-id');
    }
    return { indexKey: readKey(opts) };
  }
  const kms = readKmsConfig(opts);
  if (kms === undefined) return { indexKey: readKey(opts) };
  const indexKey = optionalKey(opts);
  if (indexKey && opts.kmsName !== undefined) {
    indexKey.fill(0);
    throw usage('Pass the index key (--key-file / VECVAULT_INDEX_KEY) or --kms-name, not both.', '--kms-name');
  }
  return { kms, ...(indexKey ? { indexKey } : {}), ...(opts.kmsName !== undefined ? { kmsName: opts.kmsName } : {}) };
}

// ---- opening ----

function need<T>(value: T | undefined, flag: string): T {
  if (value === undefined || value === '') throw usage(`${flag} is required.`, flag);
  return value;
}

/**
 * Opens the index named by --path/--index with the key (or, with --kms-config, through the KMS slot
 * its catalog entry names; with --user-id, as that user with the user's key), runs `fn`, then
 * closes the store whatever happens.
 */
async function withIndex<T>(opts: Common, fn: (index: EncryptedIndex, client: Client) => Promise<T>): Promise<T> {
  const path = need(opts.path, '--path');
  const indexName = need(opts.index, '--index');
  const source = keySource(opts);
  const indexKey = source.indexKey;
  try {
    if (!existsSync(join(path, 'store')))
      throw new VecvaultError('VECVAULT_INDEX_NOT_FOUND', `${path} holds no vecvault store. Create one with \`vecvault create\`.`);
    const client = new Client({ path, ...(source.kms ? { kms: source.kms } : {}) });
    try {
      const index = await client.loadIndex(
        opts.userId !== undefined
          ? { indexName, indexKey: indexKey!, userId: opts.userId }
          : indexKey
            ? { indexName, indexKey }
            : { indexName, ...(source.kmsName ? { kmsName: source.kmsName } : {}) },
      );
      indexKey?.fill(0);
      return await fn(index, client);
    } finally {
      await client.close();
    }
  } finally {
    indexKey?.fill(0);
  }
}

function parseJson(text: string, flag: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw usage(`${flag} is not valid JSON.`, flag);
  }
}

function list(text: string | undefined, flag: string): string[] {
  const items = need(text, flag)
    .split(',')
    .map((s) => s.trim());
  if (items.some((s) => s === '')) throw usage(`${flag} takes a comma-separated list with no empty items.`, flag);
  return items;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw usage(`${flag} must be a positive integer.`, flag);
  return n;
}

/** A file created for secrets or plaintext: mode 0600, never over an existing file. */
function createPrivateFile(file: string): number {
  try {
    return openSync(file, 'wx', 0o600);
  } catch (cause) {
    if ((cause as { code?: string }).code === 'EEXIST') throw usage(`${file} already exists: pick a new file (it is never overwritten).`, '--out');
    throw ioError(`create ${file}`, cause);
  }
}

// ---- commands ----

async function keygen(opts: Common & { out?: string }): Promise<void> {
  const key = Client.generateKey();
  const hex = Buffer.from(key).toString('hex');
  key.fill(0);
  if (opts.out === undefined) {
    emit(opts, { key: hex }, () => `${hex}\n`);
    return;
  }
  const fd = createPrivateFile(opts.out);
  try {
    writeSync(fd, `${hex}\n`);
  } finally {
    closeSync(fd);
  }
  emit(opts, { out: opts.out }, () => `Wrote a new index key to ${opts.out} (mode 0600). Keep it safe: without it the index cannot be read.\n`);
}

/** Commands that need the root key source (creating an index, recovering one) refuse --user-id before anything is opened. */
function rootOnly(opts: Common, command: string): void {
  if (opts.userId !== undefined) throw usage(`${command} needs the index's root key source, not a user key: leave out --user-id.`, '--user-id');
}

async function create(opts: Common & { dimension?: string; metric?: string; precision?: string }): Promise<void> {
  rootOnly(opts, 'create');
  const path = need(opts.path, '--path');
  const indexName = need(opts.index, '--index');
  const source = keySource(opts);
  const indexKey = source.indexKey;
  if (indexKey === undefined && source.kmsName === undefined) {
    throw usage('create needs the index key (--key-file / VECVAULT_INDEX_KEY) or --kms-name with --kms-config.', '--key-file');
  }
  const client = new Client({ path, ...(source.kms ? { kms: source.kms } : {}) });
  try {
    const keying = source.kms === undefined ? { indexKey: source.indexKey } : { kmsName: need(opts.kmsName, '--kms-name') };
    const index = await client
      .createIndex({
        indexName,
        ...(indexKey ? { indexKey } : { kmsName: source.kmsName! }),
        dimension: opts.dimension === undefined ? undefined : positiveInt(opts.dimension, '--dimension'),
        metric: opts.metric as never,
        storagePrecision: opts.precision as never,
      })
      .finally(() => indexKey?.fill(0));
    const result = { indexName, dimension: index.getDimension(), metric: index.getMetric(), storagePrecision: index.getStoragePrecision() };
    emit(opts, result, () => `Created index "${indexName}" (dimension ${result.dimension ?? 'set by the first import'}, metric ${result.metric}).\n`);
  } finally {
    await client.close();
  }
}

async function importFile(file: string, opts: Common & { batchSize: string }): Promise<void> {
  const format = formatOf(file);
  const batchSize = positiveInt(opts.batchSize, '--batch-size');
  let size: number;
  try {
    const stat = statSync(file);
    if (stat.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: 'EISDIR' });
    size = stat.size;
  } catch (cause) {
    throw ioError(`read ${file}`, cause); // before the store is opened
  }
  await withIndex(opts, async (index) => {
    const bar = progressBar('import', opts.json === true, 'bytes');
    let bytes = 0;
    let imported = 0;
    let batch: ImportRow[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      try {
        await index.upsert({ items: batch as VectorItem[] });
      } catch (error) {
        if (error instanceof ValidationError) {
          throw new ValidationError(
            `Rows ${imported}–${imported + batch.length - 1} of ${file} were refused (${imported} rows before them are imported): ${error.message}`,
            {
              path: error.path,
            },
          );
        }
        throw error;
      }
      imported += batch.length;
      batch = [];
      bar.update(bytes, size);
    };
    try {
      for await (const row of readRows(file, format, (n) => (bytes += n))) {
        batch.push(row);
        if (batch.length >= batchSize) await flush();
      }
      await flush();
    } finally {
      bar.stop();
    }
    emit(opts, { imported, format }, () => `Imported ${imported} rows from ${file}.\n`);
  });
}

async function queryCommand(opts: Common & { vector?: string; topK: string; filter?: string; include?: string }): Promise<void> {
  const vector = parseJson(need(opts.vector, '--vector'), '--vector');
  const topK = positiveInt(opts.topK, '--top-k');
  const filters = opts.filter === undefined ? undefined : (parseJson(opts.filter, '--filter') as Filter);
  const include = (opts.include === undefined ? ['distance'] : list(opts.include, '--include')) as QueryInclude[];
  await withIndex(opts, async (index) => {
    const { results } = await index.query({ queryVectors: vector as number[], topK, filters, include });
    emit(opts, { results }, () => results.map((r) => `${toJson(r)}\n`).join(''));
  });
}

async function getCommand(opts: Common & { ids?: string; include?: string }): Promise<void> {
  const ids = list(opts.ids, '--ids');
  const include = (opts.include === undefined ? ['vector', 'metadata', 'contents'] : list(opts.include, '--include')) as GetInclude[];
  await withIndex(opts, async (index) => {
    const records = await index.get({ ids, include });
    emit(opts, { records }, () => records.map((r) => `${toJson(r)}\n`).join(''));
  });
}

async function deleteCommand(opts: Common & { ids?: string }): Promise<void> {
  const ids = list(opts.ids, '--ids');
  await withIndex(opts, async (index) => {
    const { deletedCount } = await index.delete({ ids });
    emit(opts, { deletedCount }, () => `Deleted ${deletedCount} record(s).\n`);
  });
}

async function listCommand(opts: Common & { filter?: string }): Promise<void> {
  if (opts.index === undefined) {
    const path = need(opts.path, '--path');
    if (!existsSync(join(path, 'store'))) throw new VecvaultError('VECVAULT_INDEX_NOT_FOUND', `${path} holds no vecvault store.`);
    const client = new Client({ path });
    try {
      const indexes = await client.listIndexes();
      emit(opts, { indexes }, () => indexes.map((n) => `${n}\n`).join(''));
    } finally {
      await client.close();
    }
    return;
  }
  const filters = opts.filter === undefined ? undefined : (parseJson(opts.filter, '--filter') as Filter);
  await withIndex(opts, async (index) => {
    const { ids, count } = await index.listIds({ filters });
    emit(opts, { ids, count }, () => ids.map((id) => `${id}\n`).join(''));
  });
}

async function statsCommand(opts: Common): Promise<void> {
  await withIndex(opts, async (index) => {
    const stats = index.stats();
    emit(opts, stats, () =>
      Object.entries(stats)
        .map(([k, v]) => `${k}: ${typeof v === 'object' && v !== null ? toJson(v) : String(v)}\n`)
        .join(''),
    );
  });
}

async function verifyCommand(opts: Common): Promise<number> {
  return withIndex(opts, async (index) => {
    const bar = progressBar('verify', opts.json === true, 'values');
    const report = await index.verify({ onProgress: ({ done, total }) => bar.update(done, total) }).finally(() => bar.stop());
    emit(opts, report, () =>
      report.ok
        ? `OK: ${report.checked.records} records, ${report.checked.changeLog} change-log entries, ${report.checked.snapshotChunks} snapshot chunks, the catalog entry, manifest and commit head authenticate.\n`
        : '',
    );
    if (report.ok) return 0;
    for (const p of report.problems) process.stderr.write(`${p.kind}: ${p.detail}\n`);
    process.stderr.write(
      `VECVAULT_INTEGRITY: verify found ${report.problems.length} problem(s). Restore a backup, or copy what still authenticates with \`vecvault recover --path DIR --to NEWDIR\`.\n`,
    );
    return EXIT.integrity;
  });
}

async function recoverCommand(opts: Common & { to?: string; ids?: boolean; metric?: string }): Promise<number> {
  rootOnly(opts, 'recover');
  const path = need(opts.path, '--path');
  const indexName = need(opts.index, '--index');
  const to = need(opts.to, '--to');
  if (opts.kmsConfig !== undefined)
    throw new NotSupportedError('recover --kms-config: recovering a KMS-held index is not supported yet; the damaged store is untouched.');
  const indexKey = readKey(opts);
  const bar = progressBar('recover', opts.json === true, 'records');
  const report = await recoverIndex({
    path,
    to,
    indexName,
    indexKey,
    includeIds: opts.ids === true,
    metric: opts.metric as never,
    onProgress: ({ done, total }) => bar.update(done, total),
  }).finally(() => {
    indexKey.fill(0);
    bar.stop();
  });
  const lossy = report.unreadable > 0 || (report.missing ?? 0) > 0 || report.lostIds > 0 || !report.digestMatched;
  emit(opts, report, () => {
    const lines = [
      `Recovered ${report.recovered} record(s) of index "${indexName}" into ${to}.`,
      `Unreadable records (did not authenticate): ${report.unreadable}.`,
      `Missing against the manifest: ${report.missing === null ? 'unknown (the manifest does not authenticate)' : report.missing} (manifest counts ${report.expected ?? 'unknown'}).`,
      `Ids named by the change log or snapshot with no recovered record: ${report.lostIds}${report.ids ? `: ${report.ids.join(', ')}` : report.lostIds > 0 ? ' (list them with --ids)' : ''}.`,
    ];
    if (report.repaired) lines.push('LevelDB had to repair the copy before it would open.');
    if (!report.digestMatched && report.manifestReadable)
      lines.push('The recovered records do not add up to the manifest digest: some may be older versions than the newest acknowledged.');
    return lines.map((l) => `${l}\n`).join('');
  });
  if (lossy) process.stderr.write(`Recovery is incomplete: see the counts above. The damaged store at ${path} was not modified.\n`);
  return lossy ? EXIT.partial : 0;
}

/** Records read back per `get` while exporting. */
const EXPORT_BATCH = 256;

async function exportCommand(opts: Common & { plaintext?: boolean; out?: string }): Promise<void> {
  if (opts.plaintext !== true) {
    throw usage('export writes decrypted records: pass --plaintext to confirm, and keep the output as safe as the key.', '--plaintext');
  }
  await withIndex(opts, async (index) => {
    const fd = opts.out === undefined ? 1 : createPrivateFile(opts.out);
    const bar = progressBar('export', opts.json === true, 'records');
    let exported = 0;
    try {
      const { ids } = await index.listIds();
      for (let i = 0; i < ids.length; i += EXPORT_BATCH) {
        const records = await index.get({ ids: ids.slice(i, i + EXPORT_BATCH), include: ['vector', 'metadata', 'contents'] });
        const found = records.filter((r) => r.vector !== undefined); // an id listed above is always there: this process holds the store
        const text = found.map((r) => `${toJson(r)}\n`).join('');
        try {
          writeSync(fd, text);
        } catch (cause) {
          throw ioError(`write ${opts.out ?? 'stdout'}`, cause);
        }
        exported += found.length;
        bar.update(exported, ids.length);
      }
    } finally {
      bar.stop();
      if (fd !== 1) closeSync(fd);
    }
    if (opts.out !== undefined) emit(opts, { exported, out: opts.out }, () => `Exported ${exported} record(s) to ${opts.out}.\n`);
  });
}

/** The package root (src/cli/ or dist/cli/ two levels down). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function bench(args: string[]): number {
  const script = join(ROOT, 'bench', 'run.ts');
  if (!existsSync(script)) {
    throw new NotSupportedError(
      'vecvault bench runs the benchmark suite of a development checkout (bench/run.ts), which the installed package does not include.',
    );
  }
  const run = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: 'inherit' });
  return run.status ?? EXIT.internal;
}

async function rotateKeyCommand(opts: Common & { newKeyFile?: string; newKmsName?: string }): Promise<void> {
  if ((opts.newKeyFile === undefined) === (opts.newKmsName === undefined)) {
    throw usage('rotate-key needs exactly one new key source: --new-key-file FILE or --new-kms-name SLOT (with --kms-config).', '--new-key-file');
  }
  if (opts.newKmsName !== undefined && opts.kmsConfig === undefined) throw usage('--new-kms-name needs --kms-config FILE.', '--kms-config');
  const newKey = opts.newKeyFile === undefined ? undefined : readKeyFile(opts.newKeyFile, '--new-key-file');
  try {
    await withIndex(opts, async (index) => {
      await index.rotateKey(newKey ? { indexKey: newKey } : { kmsName: opts.newKmsName! });
      const keySource = index.getKeySource();
      emit(opts, { status: 'success', keySource }, () =>
        keySource.provider === 'none'
          ? `Index "${index.getIndexName()}" now opens with the new key only; the old key no longer opens it.\n`
          : `Index "${index.getIndexName()}" is now held by KMS slot "${keySource.kmsName}" (${keySource.provider}); the old key no longer opens it.\n`,
      );
    });
  } finally {
    newKey?.fill(0);
  }
}

async function rotateDataKeyCommand(opts: Common): Promise<void> {
  await withIndex(opts, async (index) => {
    const bar = progressBar('rotate', opts.json === true, 'records');
    let records = 0;
    await index
      .rotateDataKey({
        onProgress: ({ done, total }) => {
          records = total;
          bar.update(done, total);
        },
      })
      .finally(() => bar.stop());
    emit(
      opts,
      { status: 'success', records },
      () => `Re-sealed ${records} records of index "${index.getIndexName()}" under a new data key; nothing under the old one remains in the store's files.\n`,
    );
  });
}

const PERMISSIONS: Record<string, Permission[]> = { read: ['read'], 'read,write': ['read', 'write'], 'write,read': ['read', 'write'] };

async function createUserKeyCommand(userId: string, opts: Common & { permissions: string; out?: string }): Promise<void> {
  const permissions = PERMISSIONS[opts.permissions.replaceAll(' ', '')];
  if (permissions === undefined) throw usage('--permissions is read or read,write.', '--permissions');
  const fd = opts.out === undefined ? undefined : createPrivateFile(opts.out); // before the user exists: a taken file changes nothing
  let written = false;
  try {
    await withIndex(opts, async (index) => {
      const key = await index.createUserKey({ userId, permissions });
      const hex = Buffer.from(key).toString('hex');
      key.fill(0);
      if (fd === undefined) {
        emit(opts, { userId, permissions, key: hex }, () => `${hex}\n`);
        return;
      }
      try {
        writeSync(fd, `${hex}\n`);
      } catch (cause) {
        throw ioError(`write ${opts.out}`, cause);
      }
      written = true;
      emit(
        opts,
        { userId, permissions, out: opts.out },
        () =>
          `Wrote the key of user "${userId}" (${permissions.join(', ')}) to ${opts.out} (mode 0600). Open with --key-file ${opts.out} --user-id ${userId}.\n`,
      );
    });
  } finally {
    if (fd !== undefined) {
      closeSync(fd);
      if (!written) rmSync(opts.out!, { force: true }); // an empty key file would only mislead
    }
  }
}

async function listUsersCommand(opts: Common): Promise<void> {
  await withIndex(opts, async (index) => {
    const users = await index.listUsers();
    emit(opts, { users }, () => users.map((u) => `${u.userId}\t${u.permissions.join(',')}\n`).join(''));
  });
}

async function revokeUserCommand(userId: string, opts: Common): Promise<void> {
  await withIndex(opts, async (index) => {
    await index.revokeUser({ userId });
    emit(opts, { status: 'success', userId }, () => `User "${userId}" is revoked from index "${index.getIndexName()}"; their key no longer opens it.\n`);
  });
}

// ---- the program ----

function common(command: Command, { index = true, key = true }: { index?: boolean; key?: boolean } = {}): Command {
  command.option('--path <dir>', 'the store directory');
  if (index) command.option('--index <name>', 'the index name');
  if (key) {
    command.option('--key-file <file>', 'the index key: 32 raw bytes or 64 hex characters (or set VECVAULT_INDEX_KEY)');
    command.option('--kms-config <file>', 'KMS slots as JSON (docs/cli.md): a KMS-held index opens through the slot its catalog entry names');
    command.option('--kms-name <slot>', 'with create: the slot of --kms-config that holds the new index key');
    if (index) command.option('--user-id <id>', "open as this user: the key file (or VECVAULT_INDEX_KEY) holds the user's key");
  }
  return command.option('--json', 'print one JSON document on stdout');
}

function program(setExit: (code: number) => void): Command {
  const cli = new Command('vecvault')
    .description('vecvault: an embedded encrypted vector store (docs/cli.md)')
    .version((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined });
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) =>
    async (...args: A) => {
      const code = await fn(...args);
      if (typeof code === 'number') setExit(code);
    };
  common(cli.command('keygen').description('make a new random index key'), { index: false, key: false })
    .option('--out <file>', 'write it to FILE (mode 0600) instead of stdout')
    .action(run(keygen));
  common(cli.command('create').description('create an encrypted index'))
    .option('--dimension <n>', 'vector length (or let the first import set it)')
    .option('--metric <metric>', 'euclidean | squared_euclidean | cosine | ip', 'euclidean')
    .option('--precision <precision>', 'float32 | float16 | int8 (in memory)')
    .action(run(create));
  common(cli.command('import').description('import a .fvecs, .bvecs, .npy, JSONL or CSV file').argument('<file>'))
    .option('--batch-size <n>', 'rows per commit', '1000')
    .action(run(importFile));
  common(cli.command('query').description('nearest neighbours of one vector'))
    .option('--vector <json>', 'the query vector, a JSON array')
    .option('--top-k <k>', 'how many results', '10')
    .option('--filter <json>', 'a metadata filter, e.g. \'{"year":{"$gte":2020}}\'')
    .option('--include <fields>', 'distance,metadata,vector,contents', 'distance')
    .action(run(queryCommand));
  common(cli.command('get').description('records by id'))
    .option('--ids <ids>', 'comma-separated ids')
    .option('--include <fields>', 'vector,metadata,contents')
    .action(run(getCommand));
  common(cli.command('delete').description('delete records by id')).option('--ids <ids>', 'comma-separated ids').action(run(deleteCommand));
  common(cli.command('list').description('the ids of an index (or, without --index, the index names)'))
    .option('--filter <json>', 'only ids whose metadata matches')
    .action(run(listCommand));
  common(cli.command('stats').description('count, dimension, metric, memory and commit state')).action(run(statsCommand));
  common(cli.command('verify').description('authenticate every value of an index; exit 6 on any problem')).action(run(verifyCommand));
  common(cli.command('recover').description('copy every record that still authenticates into a new store'))
    .option('--to <dir>', 'the new store directory (absent or empty)')
    .option('--ids', 'also list the ids known to be lost')
    .option('--metric <metric>', 'the metric, needed only when the manifest no longer authenticates')
    .action(run(recoverCommand));
  common(cli.command('export').description('write the decrypted records as JSONL (needs --plaintext)'))
    .option('--plaintext', 'confirm: the output is not encrypted')
    .option('--out <file>', 'write to FILE (mode 0600, never overwritten) instead of stdout')
    .action(run(exportCommand));
  cli
    .command('bench')
    .description('run the benchmark suite (development checkout only); arguments go to bench/run.ts')
    .allowUnknownOption()
    .argument('[args...]')
    .action(run((args: string[]) => bench(args)));
  common(cli.command('rotate-key').description('re-wrap the data key under a new index key or KMS slot (O(1); the old key stops opening the index)'))
    .option('--new-key-file <file>', 'the new index key: 32 raw bytes or 64 hex characters')
    .option('--new-kms-name <slot>', 'the slot of --kms-config to hold the key from now on')
    .action(run(rotateKeyCommand));
  common(cli.command('rotate-data-key').description('re-seal every record under a new data key (resumable)')).action(run(rotateDataKeyCommand));
  common(cli.command('create-user-key').description("give a user their own key (needs the index's root key source)").argument('<userId>'))
    .option('--permissions <p>', 'read | read,write', 'read')
    .option('--out <file>', 'write the user key to FILE (mode 0600) instead of stdout')
    .action(run(createUserKeyCommand));
  common(cli.command('list-users').description('the users of an index and their permissions')).action(run(listUsersCommand));
  common(cli.command('revoke-user').description('revoke a user at once; their wraps are erased from the files').argument('<userId>')).action(
    run(revokeUserCommand),
  );
  return cli;
}

async function main(argv: string[]): Promise<number> {
  let exit = 0;
  const cli = program((code) => (exit = code));
  try {
    await cli.parseAsync(argv, { from: 'user' });
    return exit;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version are not failures; everything else is bad usage (commander printed why).
      if (error.exitCode === 0) return 0;
      process.stderr.write(`VECVAULT_VALIDATION: ${error.message.replace(/^error: /, '')}\n`);
      return EXIT.usage;
    }
    return reportError(error, argv[0] !== 'recover');
  }
}

process.exitCode = await main(process.argv.slice(2));
