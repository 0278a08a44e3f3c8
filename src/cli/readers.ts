/**
 * Streaming readers for `vecvault import`: `.fvecs`, `.bvecs`, `.npy`, JSONL
 * and CSV, each yielding one row at a time from a file read in chunks, so a
 * file of any size never sits in memory whole. Errors name the row or line
 * and the problem, never the values.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { StorageError, ValidationError } from '../errors.js';
import { ioError } from '../storage/io-errors.js';

export interface ImportRow {
  id: string;
  vector: number[] | Float32Array;
  metadata?: Record<string, unknown>;
  contents?: string;
}

export type InputFormat = 'fvecs' | 'bvecs' | 'npy' | 'jsonl' | 'csv';

/** The format named by a file's extension (`.jsonl`/`.ndjson`, `.csv`, `.fvecs`, `.bvecs`, `.npy`). */
export function formatOf(file: string): InputFormat {
  const ext = file.toLowerCase().split('.').pop() ?? '';
  if (ext === 'fvecs' || ext === 'bvecs' || ext === 'npy' || ext === 'csv') return ext;
  if (ext === 'jsonl' || ext === 'ndjson') return 'jsonl';
  throw new ValidationError(`Cannot tell the format of ${file}: use a .fvecs, .bvecs, .npy, .jsonl (or .ndjson) or .csv file.`, { path: 'FILE' });
}

const corrupt = (file: string, what: string) => new ValidationError(`${file} is not a valid file of its format: ${what}.`, { path: 'FILE' });

/** The file's chunks; an unreadable file is a StorageError (VECVAULT_IO). */
async function* chunks(file: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) yield chunk as Buffer;
  } catch (cause) {
    if (cause instanceof StorageError || cause instanceof ValidationError) throw cause;
    throw ioError(`read ${file}`, cause);
  }
}

/** Reads exactly-sized pieces from a chunk stream; `onBytes` counts the bytes taken (rows handed on), for progress. */
class ByteReader {
  private buffered: Buffer[] = [];
  private size = 0;
  constructor(
    private readonly source: AsyncGenerator<Buffer>,
    private readonly onBytes: (n: number) => void,
  ) {}

  /** `n` bytes, or null at a clean end of file; throws `partial()` when the file ends inside them. */
  async take(n: number, partial: () => Error): Promise<Buffer | null> {
    while (this.size < n) {
      const next = await this.source.next();
      if (next.done) {
        if (this.size === 0) return null;
        throw partial();
      }
      this.buffered.push(next.value);
      this.size += next.value.byteLength;
    }
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    this.onBytes(n);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.buffered = rest.byteLength > 0 ? [rest] : [];
    this.size = rest.byteLength;
    return out;
  }
}

const MAX_DIMENSION = 65_536;

/** `.fvecs` (int32 dimension, then float32 values, per row) and `.bvecs` (int32 dimension, then uint8 values). */
async function* readVecs(file: string, bytesPer: 1 | 4, onBytes: (n: number) => void): AsyncGenerator<ImportRow> {
  const reader = new ByteReader(chunks(file), onBytes);
  let dimension = -1;
  for (let row = 0; ; row++) {
    const head = await reader.take(4, () => corrupt(file, `row ${row} is truncated`));
    if (head === null) return;
    const d = head.readInt32LE(0);
    if (d <= 0 || d > MAX_DIMENSION) throw corrupt(file, `row ${row} declares dimension ${d}`);
    if (dimension !== -1 && d !== dimension) throw corrupt(file, `row ${row} has dimension ${d}, earlier rows ${dimension}`);
    dimension = d;
    const body = await reader.take(d * bytesPer, () => corrupt(file, `row ${row} is truncated`));
    const vector = new Float32Array(d);
    if (bytesPer === 4) for (let i = 0; i < d; i++) vector[i] = body!.readFloatLE(4 * i);
    else for (let i = 0; i < d; i++) vector[i] = body![i]!;
    yield { id: String(row), vector };
  }
}

const NPY_TYPES: Record<string, { bytes: number; read: (b: Buffer, at: number) => number }> = {
  '<f4': { bytes: 4, read: (b, at) => b.readFloatLE(at) },
  '<f8': { bytes: 8, read: (b, at) => b.readDoubleLE(at) },
  '|u1': { bytes: 1, read: (b, at) => b.readUInt8(at) },
  '|i1': { bytes: 1, read: (b, at) => b.readInt8(at) },
  '<i4': { bytes: 4, read: (b, at) => b.readInt32LE(at) },
};

/** NumPy `.npy` (format 1, 2 or 3): a C-ordered 2-D array of float32, float64, uint8, int8 or int32. */
async function* readNpy(file: string, onBytes: (n: number) => void): AsyncGenerator<ImportRow> {
  const reader = new ByteReader(chunks(file), onBytes);
  const short = () => corrupt(file, 'the header is truncated');
  const magic = await reader.take(8, short);
  if (magic === null || magic.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw corrupt(file, 'no NumPy magic string');
  const major = magic[6]!;
  const lengthBytes = major === 1 ? 2 : 4;
  const len = await reader.take(lengthBytes, short);
  const headerLength = lengthBytes === 2 ? len!.readUInt16LE(0) : len!.readUInt32LE(0);
  if (headerLength > 1 << 16) throw corrupt(file, 'the header is too long');
  const header = (await reader.take(headerLength, short))!.toString(major >= 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape'\s*:\s*\(\s*(\d+)\s*,\s*(\d+)\s*,?\s*\)/.exec(header);
  if (descr === undefined || fortran === undefined || shape === null) throw corrupt(file, 'the header does not describe a 2-D array');
  const type = NPY_TYPES[descr];
  if (type === undefined) throw corrupt(file, `dtype ${descr} is not supported (use float32, float64, uint8, int8 or int32)`);
  if (fortran === 'True') throw corrupt(file, 'Fortran-ordered arrays are not supported (save a C-ordered array)');
  const rows = Number(shape[1]);
  const d = Number(shape[2]);
  if (d <= 0 || d > MAX_DIMENSION) throw corrupt(file, `the rows have dimension ${d}`);
  for (let row = 0; row < rows; row++) {
    const body = await reader.take(d * type.bytes, () => corrupt(file, `row ${row} is truncated`));
    if (body === null) throw corrupt(file, `the file ends at row ${row} of ${rows}`);
    const vector = new Float32Array(d);
    for (let i = 0; i < d; i++) vector[i] = type.read(body, i * type.bytes);
    yield { id: String(row), vector };
  }
}

/** The lines of a text file, with their numbers (from 1), streamed. */
async function* lines(file: string, onBytes: (n: number) => void): AsyncGenerator<{ line: string; number: number }> {
  const input = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const rl = createInterface({ input, crlfDelay: Infinity });
  let number = 0;
  try {
    for await (const line of rl) {
      onBytes(Buffer.byteLength(line) + 1);
      yield { line, number: ++number };
    }
  } catch (cause) {
    throw ioError(`read ${file}`, cause);
  } finally {
    rl.close();
    input.destroy();
  }
}

function checkRowObject(value: unknown, file: string, at: string): ImportRow {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt(file, `${at} is not an object { id, vector, metadata?, contents? }`);
  const v = value as Record<string, unknown>;
  if (typeof v.id !== 'string' && typeof v.id !== 'number') throw corrupt(file, `${at} has no string id`);
  if (!Array.isArray(v.vector)) throw corrupt(file, `${at} has no vector array`);
  const row: ImportRow = { id: String(v.id), vector: v.vector as number[] };
  if (v.metadata !== undefined && v.metadata !== null) row.metadata = v.metadata as Record<string, unknown>;
  if (v.contents !== undefined && v.contents !== null) {
    if (typeof v.contents !== 'string') throw corrupt(file, `${at}: contents must be a string`);
    row.contents = v.contents;
  }
  return row;
}

/** JSONL: one `{ "id", "vector", "metadata"?, "contents"? }` per line; blank lines are skipped. */
async function* readJsonl(file: string, onBytes: (n: number) => void): AsyncGenerator<ImportRow> {
  for await (const { line, number } of lines(file, onBytes)) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw corrupt(file, `line ${number} is not JSON`);
    }
    yield checkRowObject(value, file, `line ${number}`);
  }
}

/** RFC 4180 records (quoted fields may hold commas, quotes as "" and newlines), streamed by line. */
async function* csvRecords(file: string, onBytes: (n: number) => void): AsyncGenerator<{ fields: string[]; line: number }> {
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let start = 0;
  for await (const { line, number } of lines(file, onBytes)) {
    if (!quoted) start = number;
    else field += '\n';
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i++;
          } else quoted = false;
        } else field += c;
      } else if (c === '"' && field === '') quoted = true;
      else if (c === ',') {
        fields.push(field);
        field = '';
      } else field += c;
    }
    if (quoted) continue;
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) yield { fields, line: start };
    fields = [];
    field = '';
  }
  if (quoted) throw corrupt(file, `a quoted field opened on line ${start} never closes`);
}

/** A CSV metadata cell: JSON numbers and booleans keep their type, anything else is a string; empty cells are left out. */
function csvValue(cell: string): unknown {
  if (cell === 'true') return true;
  if (cell === 'false') return false;
  if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(cell)) return Number(cell);
  return cell;
}

/** CSV with a header row: an `id` column, a `vector` column holding a JSON array, optional `contents`; other columns are metadata. */
async function* readCsv(file: string, onBytes: (n: number) => void): AsyncGenerator<ImportRow> {
  let header: string[] | null = null;
  let idAt = -1;
  let vectorAt = -1;
  let contentsAt = -1;
  for await (const { fields, line } of csvRecords(file, onBytes)) {
    if (header === null) {
      header = fields.map((f) => f.trim());
      idAt = header.indexOf('id');
      vectorAt = header.indexOf('vector');
      contentsAt = header.indexOf('contents');
      if (idAt < 0 || vectorAt < 0) throw corrupt(file, 'the header row needs an "id" and a "vector" column');
      continue;
    }
    if (fields.length !== header.length) throw corrupt(file, `line ${line} has ${fields.length} fields, the header ${header.length}`);
    let vector: unknown;
    try {
      vector = JSON.parse(fields[vectorAt]!);
    } catch {
      throw corrupt(file, `line ${line}: the vector is not a JSON array`);
    }
    const metadata: Record<string, unknown> = {};
    header.forEach((name, i) => {
      if (i !== idAt && i !== vectorAt && i !== contentsAt && fields[i] !== '') metadata[name] = csvValue(fields[i]!);
    });
    const row: Record<string, unknown> = { id: fields[idAt], vector };
    if (Object.keys(metadata).length > 0) row.metadata = metadata;
    if (contentsAt >= 0 && fields[contentsAt] !== '') row.contents = fields[contentsAt];
    yield checkRowObject(row, file, `line ${line}`);
  }
}

/** The rows of `file` in its format, streamed. */
export function readRows(file: string, format: InputFormat, onBytes: (n: number) => void = () => undefined): AsyncGenerator<ImportRow> {
  switch (format) {
    case 'fvecs':
      return readVecs(file, 4, onBytes);
    case 'bvecs':
      return readVecs(file, 1, onBytes);
    case 'npy':
      return readNpy(file, onBytes);
    case 'jsonl':
      return readJsonl(file, onBytes);
    case 'csv':
      return readCsv(file, onBytes);
  }
}
