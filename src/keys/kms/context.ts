/**
 * The context a key provider binds every wrap to: catalog format, index name,
 * index id and DEK generation. The bytes are the AAD of a local or PKCS#11
 * AES-GCM wrap; AWS KMS gets the same fields as its EncryptionContext (a
 * string map, shown in CloudTrail), so a wrap made for one index, or for one
 * DEK generation, never unwraps for another.
 */
import { frame, u64 } from '../../crypto/kdf.js';
import { ValidationError } from '../../errors.js';

/** What a provider's context binds. */
export interface KmsContextFields {
  /** The catalog format of the index (`FORMAT_VERSION` for a new index). */
  format: number;
  indexName: string;
  /** The 16-byte random index id. */
  indexId: Uint8Array;
  /** The DEK generation the wrap belongs to (1 for a new index; +1 per `rotateDataKey`). */
  dekGeneration: number;
}

const LABEL = 'vecvault/kms-context/v1';

function checkFields(fields: KmsContextFields): void {
  const { format, indexName, indexId, dekGeneration } = fields;
  if (!Number.isSafeInteger(format) || format < 1) throw new ValidationError('The KMS context format must be a positive integer.', { path: 'format' });
  if (typeof indexName !== 'string' || indexName.length === 0) throw new ValidationError('The KMS context needs the index name.', { path: 'indexName' });
  if (!(indexId instanceof Uint8Array) || indexId.byteLength === 0) throw new ValidationError('The KMS context needs the index id bytes.', { path: 'indexId' });
  if (!Number.isSafeInteger(dekGeneration) || dekGeneration < 1) {
    throw new ValidationError('The KMS context DEK generation must be a positive integer.', { path: 'dekGeneration' });
  }
}

/**
 * The stable context bytes: length-prefixed fields under a version label
 * (`frame(label, u64(format), indexName, indexId, u64(dekGeneration))`), so
 * no two different contexts share bytes. Pass them to `KeyProvider.wrap`/`unwrap`.
 */
export function kmsContext(fields: KmsContextFields): Uint8Array {
  checkFields(fields);
  return new Uint8Array(frame(LABEL, u64(fields.format), fields.indexName, fields.indexId, u64(fields.dekGeneration)));
}

/** The fields of context bytes made by `kmsContext`, or undefined for any other bytes. */
export function parseKmsContext(context: Uint8Array): KmsContextFields | undefined {
  const parts: Buffer[] = [];
  const bytes = Buffer.from(context.buffer, context.byteOffset, context.byteLength);
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) return undefined;
    const len = bytes.readUInt32BE(at);
    at += 4;
    if (at + len > bytes.byteLength) return undefined;
    parts.push(bytes.subarray(at, at + len));
    at += len;
  }
  if (parts.length !== 5 || parts[0]!.toString('utf8') !== LABEL || parts[1]!.byteLength !== 8 || parts[4]!.byteLength !== 8) return undefined;
  const format = Number(parts[1]!.readBigUInt64BE());
  const dekGeneration = Number(parts[4]!.readBigUInt64BE());
  const indexName = parts[2]!.toString('utf8');
  const fields = { format, indexName, indexId: new Uint8Array(parts[3]!), dekGeneration };
  // Reject anything that does not re-encode to the same bytes (non-UTF-8 names, out-of-range numbers).
  try {
    return Buffer.from(kmsContext(fields)).equals(bytes) ? fields : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The AWS KMS EncryptionContext for context bytes: the readable fields for a
 * `kmsContext` (`vecvault:format`, `vecvault:index-name`, `vecvault:index-id`
 * in hex, `vecvault:dek-generation`); any other bytes are bound whole as
 * `vecvault:context` (base64). Either way a different context fails Decrypt.
 */
export function awsEncryptionContext(context: Uint8Array | KmsContextFields): Record<string, string> {
  const fields = context instanceof Uint8Array ? parseKmsContext(context) : (checkFields(context), context);
  if (fields === undefined) return { 'vecvault:context': Buffer.from(context as Uint8Array).toString('base64') };
  return {
    'vecvault:format': String(fields.format),
    'vecvault:index-name': fields.indexName,
    'vecvault:index-id': Buffer.from(fields.indexId).toString('hex'),
    'vecvault:dek-generation': String(fields.dekGeneration),
  };
}
