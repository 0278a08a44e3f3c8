/**
 * msgpack for everything vecvault stores (records, manifests, snapshot
 * tables, key material), through one msgpackr Packr: plain maps, no shared
 * structures, so every value decodes on its own.
 *
 * msgpackr keeps module-level state across calls (every Packr shares it), and
 * two parts of it held memory here (docs/performance.md, "Fourteenth round"):
 * - `unpack` keeps a DataView over the last source's whole ArrayBuffer until
 *   the next unpack. An open decodes its snapshot table's head from a view of
 *   the decrypted table, so the whole table (5 MB at 200k records, ~27 MB at
 *   1M) stayed resident after the open (a heap snapshot's only retainer).
 * - `pack` writes into a shared target buffer that grows to the largest value
 *   packed and never shrinks (a new one is allocated at the old one's size):
 *   one large metadata frame made every later record's bytes share a buffer
 *   of that size.
 * Past LARGE bytes, each is let go after the call.
 */
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Sources and targets above this size are not left to msgpackr after a call. */
const LARGE = 64 << 10;
/** msgpack nil: what `unpack` decodes after a large source, so msgpackr's view moves to this byte. */
const NIL = Uint8Array.of(0xc0);
/** The size msgpackr itself starts its target at. */
const TARGET_BYTES = 8192;

/**
 * Encodes `value`. The result is a view of msgpackr's target buffer, which later packs share: callers that pack
 * secrets (records, key bundles) zero it once sealed.
 */
export function pack(value: unknown): Buffer {
  const bytes = packr.pack(value);
  // A fresh target of the usual size (useBuffer: msgpackr writes there from now on; earlier results keep the old one).
  if (bytes.buffer.byteLength > LARGE) packr.useBuffer(Buffer.allocUnsafeSlow(TARGET_BYTES));
  return bytes;
}

/** Decodes `bytes` (binary values come back as views of it). */
export function unpack(bytes: Uint8Array): unknown {
  const value = packr.unpack(bytes);
  if (bytes.buffer.byteLength > LARGE) packr.unpack(NIL);
  return value;
}
