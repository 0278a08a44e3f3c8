/**
 * A loopback stand-in for AWS KMS and Secrets Manager, speaking the AWS JSON
 * 1.1 protocol that the official SDK clients use (POST /, `X-Amz-Target:
 * TrentService.<Op>` or `secretsmanager.<Op>`, base64 blobs, errors as
 * `{ __type, message }` with status 400). Only on 127.0.0.1, for tests.
 *
 * KMS keys are real AES-256-GCM keys held here; Encrypt binds the canonical
 * EncryptionContext as AAD, so Decrypt with another context fails with
 * InvalidCiphertextException as AWS does. Operations: CreateKey, Encrypt,
 * Decrypt, GenerateDataKey, DisableKey, EnableKey; GetSecretValue.
 * Requests must carry a SigV4 Authorization header whose credential scope
 * names a known access key id and the right service (the signature itself is
 * not checked). `stall` makes the server accept requests and never answer.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const LOOPBACK_CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKTEST0001', secretAccessKey: 'loopback-secret-access-key' } as const;
const ACCOUNT = '111122223333';

class AwsFault extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

interface KmsKey {
  id: string;
  arn: string;
  material: Buffer;
  enabled: boolean;
}

interface SecretVersion {
  versionId: string;
  binary?: Buffer;
  string?: string;
}

interface Secret {
  name: string;
  arn: string;
  versions: Map<string, SecretVersion>;
  current: string;
}

type Json = Record<string, unknown>;

function canonicalContext(context: unknown): Buffer {
  if (context === undefined || context === null) return Buffer.alloc(0);
  if (typeof context !== 'object' || Array.isArray(context)) throw new AwsFault('ValidationException', 'EncryptionContext must be a map');
  const entries = Object.entries(context as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [, v] of entries) if (typeof v !== 'string') throw new AwsFault('ValidationException', 'EncryptionContext values must be strings');
  return entries.length === 0 ? Buffer.alloc(0) : Buffer.from(JSON.stringify(entries));
}

function blob(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw new AwsFault('ValidationException', `${field} is required`);
  return Buffer.from(value, 'base64');
}

export class AwsLoopback {
  readonly region: string;
  /** Every operation received, in order (`TrentService.Encrypt`, `secretsmanager.GetSecretValue`, …). */
  readonly calls: string[] = [];
  /** When true, requests are accepted and never answered (to test timeouts). */
  stall = false;
  private readonly keys = new Map<string, KmsKey>();
  private readonly secrets = new Map<string, Secret>();
  private readonly stalled = new Set<ServerResponse>();
  private server: Server | undefined;
  private port = 0;

  constructor(region = 'eu-west-1') {
    this.region = region;
  }

  /** Starts listening on 127.0.0.1 (a free port). */
  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const res of this.stalled) res.destroy();
    this.stalled.clear();
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Creates a symmetric key directly (as CreateKey does); returns its ARN. */
  createKey(): string {
    const id = randomUUID();
    const key: KmsKey = { id, arn: `arn:aws:kms:${this.region}:${ACCOUNT}:key/${id}`, material: randomBytes(32), enabled: true };
    this.keys.set(id, key);
    return key.arn;
  }

  setKeyEnabled(keyId: string, enabled: boolean): void {
    this.resolveKey(keyId).enabled = enabled;
  }

  /** Stores a new version of a secret (making it current); returns its VersionId. */
  putSecret(name: string, value: { binary: Uint8Array } | { string: string }): string {
    const versionId = randomUUID();
    let secret = this.secrets.get(name);
    if (secret === undefined) {
      secret = {
        name,
        arn: `arn:aws:secretsmanager:${this.region}:${ACCOUNT}:secret:${name}-${randomBytes(3).toString('hex')}`,
        versions: new Map(),
        current: versionId,
      };
      this.secrets.set(name, secret);
    }
    secret.versions.set(versionId, { versionId, ...('binary' in value ? { binary: Buffer.from(value.binary) } : { string: value.string }) });
    secret.current = versionId;
    return versionId;
  }

  private resolveKey(keyId: unknown): KmsKey {
    if (typeof keyId !== 'string' || keyId.length === 0) throw new AwsFault('ValidationException', 'KeyId is required');
    const id = keyId.startsWith('arn:') ? keyId.slice(keyId.lastIndexOf('/') + 1) : keyId;
    const key = this.keys.get(id);
    if (key === undefined || (keyId.startsWith('arn:') && key.arn !== keyId)) throw new AwsFault('NotFoundException', `Key '${keyId}' does not exist`);
    return key;
  }

  private usable(key: KmsKey): KmsKey {
    if (!key.enabled) throw new AwsFault('DisabledException', `${key.arn} is disabled.`);
    return key;
  }

  private encrypt(key: KmsKey, plaintext: Buffer, context: unknown): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.material, iv);
    cipher.setAAD(canonicalContext(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const id = Buffer.from(key.id, 'utf8');
    return Buffer.concat([Buffer.of(id.byteLength), id, iv, body, cipher.getAuthTag()]);
  }

  private decrypt(ciphertext: Buffer, context: unknown, keyId: unknown): { key: KmsKey; plaintext: Buffer } {
    const invalid = new AwsFault('InvalidCiphertextException', 'The ciphertext is invalid or does not match the encryption context.');
    if (ciphertext.byteLength < 1) throw invalid;
    const idLength = ciphertext[0]!;
    if (ciphertext.byteLength < 1 + idLength + 12 + 16) throw invalid;
    const blobKey = this.keys.get(ciphertext.subarray(1, 1 + idLength).toString('utf8'));
    if (blobKey === undefined) throw invalid;
    if (keyId !== undefined && this.resolveKey(keyId) !== blobKey)
      throw new AwsFault('IncorrectKeyException', 'The key ID in the request does not identify the key that encrypted the ciphertext.');
    this.usable(blobKey);
    const iv = ciphertext.subarray(1 + idLength, 13 + idLength);
    const body = ciphertext.subarray(13 + idLength, ciphertext.byteLength - 16);
    try {
      const decipher = createDecipheriv('aes-256-gcm', blobKey.material, iv);
      decipher.setAAD(canonicalContext(context));
      decipher.setAuthTag(ciphertext.subarray(ciphertext.byteLength - 16));
      return { key: blobKey, plaintext: Buffer.concat([decipher.update(body), decipher.final()]) };
    } catch {
      throw invalid;
    }
  }

  private kms(op: string, input: Json): Json {
    switch (op) {
      case 'CreateKey': {
        const arn = this.createKey();
        const key = this.resolveKey(arn);
        return {
          KeyMetadata: {
            KeyId: key.id,
            Arn: key.arn,
            AWSAccountId: ACCOUNT,
            Enabled: true,
            KeyState: 'Enabled',
            KeyUsage: 'ENCRYPT_DECRYPT',
            KeySpec: 'SYMMETRIC_DEFAULT',
            CreationDate: Date.now() / 1000,
          },
        };
      }
      case 'Encrypt': {
        const key = this.usable(this.resolveKey(input.KeyId));
        const plaintext = blob(input.Plaintext, 'Plaintext');
        if (plaintext.byteLength === 0 || plaintext.byteLength > 4096) throw new AwsFault('ValidationException', 'Plaintext must be 1 to 4096 bytes');
        return {
          CiphertextBlob: this.encrypt(key, plaintext, input.EncryptionContext).toString('base64'),
          KeyId: key.arn,
          EncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        };
      }
      case 'Decrypt': {
        const { key, plaintext } = this.decrypt(blob(input.CiphertextBlob, 'CiphertextBlob'), input.EncryptionContext, input.KeyId);
        return { Plaintext: plaintext.toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      case 'GenerateDataKey': {
        const key = this.usable(this.resolveKey(input.KeyId));
        const bytes = typeof input.NumberOfBytes === 'number' ? input.NumberOfBytes : input.KeySpec === 'AES_128' ? 16 : input.KeySpec === 'AES_256' ? 32 : 0;
        if (bytes < 1 || bytes > 1024) throw new AwsFault('ValidationException', 'KeySpec or NumberOfBytes is required');
        const plaintext = randomBytes(bytes);
        return {
          CiphertextBlob: this.encrypt(key, plaintext, input.EncryptionContext).toString('base64'),
          Plaintext: plaintext.toString('base64'),
          KeyId: key.arn,
        };
      }
      case 'DisableKey':
        this.resolveKey(input.KeyId).enabled = false;
        return {};
      case 'EnableKey':
        this.resolveKey(input.KeyId).enabled = true;
        return {};
      default:
        throw new AwsFault('UnknownOperationException', `TrentService.${op} is not served here`);
    }
  }

  private secretsManager(op: string, input: Json): Json {
    if (op !== 'GetSecretValue') throw new AwsFault('UnknownOperationException', `secretsmanager.${op} is not served here`);
    const id = input.SecretId;
    const secret = typeof id === 'string' ? [...this.secrets.values()].find((s) => s.name === id || s.arn === id) : undefined;
    if (secret === undefined) throw new AwsFault('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    const versionId = typeof input.VersionId === 'string' ? input.VersionId : secret.current;
    const version = secret.versions.get(versionId);
    if (version === undefined) throw new AwsFault('ResourceNotFoundException', "Secrets Manager can't find the specified secret value for VersionId");
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: version.versionId,
      VersionStages: version.versionId === secret.current ? ['AWSCURRENT'] : ['AWSPREVIOUS'],
      CreatedDate: Date.now() / 1000,
      ...(version.binary === undefined ? { SecretString: version.string } : { SecretBinary: version.binary.toString('base64') }),
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    this.calls.push(target);
    if (this.stall) {
      this.stalled.add(res);
      return;
    }
    const reply = (status: number, body: Json, errorType?: string): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': randomUUID(),
        ...(errorType === undefined ? {} : { 'x-amzn-errortype': errorType }),
      });
      res.end(text);
    };
    try {
      const [service, op] = target.split('.') as [string, string | undefined];
      const expected = service === 'TrentService' ? 'kms' : service === 'secretsmanager' ? 'secretsmanager' : undefined;
      if (req.method !== 'POST' || expected === undefined || op === undefined) throw new AwsFault('UnknownOperationException', `unknown target ${target}`);
      const scope = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(String(req.headers.authorization ?? ''));
      if (scope === null) throw new AwsFault('MissingAuthenticationTokenException', 'Request is missing Authentication Token');
      if (scope[1] !== LOOPBACK_CREDENTIALS.accessKeyId)
        throw new AwsFault('UnrecognizedClientException', 'The security token included in the request is invalid.');
      if (scope[2] !== this.region || scope[3] !== expected) throw new AwsFault('InvalidSignatureException', 'Credential scope does not match this endpoint.');
      const input = chunks.length === 0 ? {} : (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
      reply(200, expected === 'kms' ? this.kms(op, input) : this.secretsManager(op, input));
    } catch (error) {
      if (error instanceof AwsFault) reply(400, { __type: error.type, message: error.message }, error.type);
      else reply(500, { __type: 'InternalFailure', message: String(error) }, 'InternalFailure');
    }
  }
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
