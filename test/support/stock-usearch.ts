/**
 * An index built by the stock usearch binding and the bytes it saves: what
 * an older vecvault or a plain usearch user left on disk, for tests that load
 * such bytes into our engine. Connectivity 16, ef_add 64, float32 unless
 * `quantization` says f16, 2 threads.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StockIndex {
  /** Answers as the stock binding does: `search(queries, k, threads)`. */
  search(queries: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array };
}

export async function stockIndexBytes(options: {
  dimensions: number;
  metric: 'l2sq' | 'cos' | 'ip';
  quantization?: 'f32' | 'f16';
  expansionSearch: number;
  keys: BigUint64Array;
  vectors: Float32Array;
}): Promise<{ stock: StockIndex; bytes: Buffer }> {
  const { default: usearch } = await import('usearch');
  const stock = new usearch.Index({
    dimensions: options.dimensions,
    metric: { cos: usearch.MetricKind.Cos, ip: usearch.MetricKind.IP, l2sq: usearch.MetricKind.L2sq }[options.metric],
    quantization: options.quantization === 'f16' ? usearch.ScalarKind.F16 : usearch.ScalarKind.F32,
    connectivity: 16,
    expansion_add: 64,
    expansion_search: options.expansionSearch,
    multi: false,
  });
  stock.add(options.keys, options.vectors, 2);
  const dir = mkdtempSync(join(tmpdir(), 'vecvault-stock-'));
  try {
    const file = join(dir, 'stock.usearch');
    stock.save(file);
    return { stock: stock as unknown as StockIndex, bytes: readFileSync(file) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
