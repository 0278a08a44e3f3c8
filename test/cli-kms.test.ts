/**
 * The CLI with a KMS-held key (`--kms-config F --kms-name S`, docs/cli.md):
 * the JSON registry is the `kms` option of `new Client`, `{ "env": NAME }`
 * stands for an environment variable. Driven against the loopback AWS KMS
 * (test/support/aws-loopback.ts) through the official SDK, from child
 * processes, so the calls are asynchronous and the server answers.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, DisableKeyCommand, EnableKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsLoopback, LOOPBACK_CREDENTIALS } from './support/aws-loopback.js';
import { vecvaultAsync } from './support/cli.js';
import { tempStore } from './support/helpers.js';

const vecvault = vecvaultAsync;

let aws: AwsLoopback;
let sdk: KMSClient;
beforeAll(async () => {
  aws = await new AwsLoopback('eu-west-1').start();
  sdk = new KMSClient({ region: aws.region, endpoint: aws.endpoint, credentials: LOOPBACK_CREDENTIALS, maxAttempts: 1 });
});
afterAll(async () => {
  sdk?.destroy();
  await aws?.close();
});

// The AWS SDK warns once per process on Node 20 (its next versions need 22); the documented switch silences it.
const QUIET = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
const SECRET_ENV = { ...QUIET, TEST_AWS_SECRET: LOOPBACK_CREDENTIALS.secretAccessKey };

async function kmsSetup() {
  const keyId = (await sdk.send(new CreateKeyCommand({ Description: 'vecvault cli' }))).KeyMetadata!.KeyId!;
  const dir = tempStore();
  const config = join(dir, 'kms.json');
  const registry = {
    aws: {
      provider: 'aws-kms',
      keyId,
      region: aws.region,
      endpoint: aws.endpoint,
      credentials: { accessKeyId: LOOPBACK_CREDENTIALS.accessKeyId, secretAccessKey: { env: 'TEST_AWS_SECRET' } },
    },
  };
  writeFileSync(config, JSON.stringify(registry));
  const path = join(dir, 'store');
  return { dir, keyId, config, path, common: ['--path', path, '--index', 'notes', '--kms-config', config] };
}

describe('vecvault CLI with --kms-config', () => {
  it('create with --kms-name, then import, query and stats find the slot from the index itself', async () => {
    const { dir, keyId, path, common } = await kmsSetup();
    const created = await vecvault(['create', ...common, '--kms-name', 'aws', '--dimension', '3', '--json'], SECRET_ENV);
    expect(created.stderr).toBe('');
    expect(JSON.parse(created.stdout)).toMatchObject({ indexName: 'notes', dimension: 3 });
    const jsonl = join(dir, 'notes.jsonl');
    writeFileSync(jsonl, ['{"id":"a","vector":[1,0,0],"metadata":{"folder":"work"}}', '{"id":"b","vector":[0,1,0]}'].join('\n'));
    const calls = aws.calls.length;
    expect((await vecvault(['import', jsonl, ...common, '--json'], SECRET_ENV)).status).toBe(0);
    expect(aws.calls.length - calls).toBe(1); // one Decrypt per open, never per record
    const query = await vecvault(['query', ...common, '--vector', '[1,0,0]', '--top-k', '1', '--json'], SECRET_ENV);
    expect(query.status).toBe(0);
    expect(JSON.parse(query.stdout).results.map((r: { id: string }) => r.id)).toEqual(['a']);
    // --kms-name on an existing index must name the slot that holds it: another name is a slot this registry lacks.
    const wrong = await vecvault(['stats', ...common, '--kms-name', 'other', '--json'], SECRET_ENV);
    expect(wrong.status).toBe(10);
    expect(wrong.stderr).toMatch(/^VECVAULT_KMS: .*other/m);
    // A raw key does not open a KMS-held index.
    const keyFile = join(dir, 'raw.key');
    writeFileSync(keyFile, 'ab'.repeat(32));
    const raw = await vecvault(['stats', '--path', path, '--index', 'notes', '--key-file', keyFile]);
    expect(raw.status).toBe(3);
    expect(raw.stderr).toMatch(/^VECVAULT_INVALID_KEY: /m);
    // A disabled KMS key: VECVAULT_KMS, exit 10; enabled again, it opens.
    await sdk.send(new DisableKeyCommand({ KeyId: keyId }));
    const disabled = await vecvault(['stats', ...common, '--json'], SECRET_ENV);
    expect(disabled.status).toBe(10);
    expect(disabled.stderr).toMatch(/^VECVAULT_KMS: /m);
    expect(disabled.stdout).toBe('');
    await sdk.send(new EnableKeyCommand({ KeyId: keyId }));
    const stats = await vecvault(['stats', ...common, '--json'], SECRET_ENV);
    expect(stats.status).toBe(0);
    expect(JSON.parse(stats.stdout)).toMatchObject({ count: 2 });
  });

  it('refuses ambiguous or incomplete key flags before the store is touched, and never prints the secret', async () => {
    const { dir, config, path, common } = await kmsSetup();
    const keyFile = join(dir, 'raw.key');
    writeFileSync(keyFile, 'cd'.repeat(32));
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['create', '--path', path, '--index', 'n', '--kms-name', 'aws'], SECRET_ENV, /--kms-name needs --kms-config/],
      [['create', ...common, '--key-file', keyFile, '--kms-name', 'aws'], SECRET_ENV, /or --kms-name, not both/],
      [['create', ...common], SECRET_ENV, /create needs the index key .* or --kms-name with --kms-config/],
      [['create', ...common, '--kms-name', 'aws'], QUIET, /kms\.aws\.credentials\.secretAccessKey names the environment variable TEST_AWS_SECRET/],
    ];
    for (const [args, env, message] of cases) {
      const run = await vecvault(args, env);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(/^VECVAULT_VALIDATION: /m);
      expect(run.stderr).toMatch(message);
    }
    // A slot missing from the registry is the KMS error DESIGN §7 names; nothing is created.
    const missing = await vecvault(['create', ...common, '--kms-name', 'nope'], SECRET_ENV);
    expect(missing.status).toBe(10);
    expect(missing.stderr).toMatch(/^VECVAULT_KMS: .*nope/m);
    const list = await vecvault(['list', '--path', path, '--json']);
    expect(list.status === 0 ? JSON.parse(list.stdout) : list.stderr).not.toContain('nope');
    // Malformed JSON and a bad slot field: usage errors naming the place.
    writeFileSync(config, '{ not json');
    const bad = await vecvault(['stats', ...common], SECRET_ENV);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--kms-config is not valid JSON/);
    writeFileSync(config, JSON.stringify({ aws: { provider: 'aws-kms', region: 'eu-west-1' } }));
    const field = await vecvault(['create', ...common, '--kms-name', 'aws'], SECRET_ENV);
    expect(field.status).toBe(2);
    expect(field.stderr).toMatch(/kms\.aws\.keyId/);
    for (const run of [missing, bad, field]) expect(run.stderr + run.stdout).not.toContain(LOOPBACK_CREDENTIALS.secretAccessKey);
  });
});
