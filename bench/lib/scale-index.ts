/** The scale benches' index shape (bench/scale.ts, bench/open.ts): one definition, so both build and open the same graphs. */
import usearch from 'usearch';

export const SCALE_DIM = 96;
export const SCALE_CONFIG = { connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

/** A stock-binding index of that shape; the stock binding fixes ef at construction, so a different ef needs its own. */
export function rawScaleIndex(expansionSearch = SCALE_CONFIG.expansionSearch): InstanceType<typeof usearch.Index> {
  return new usearch.Index({
    dimensions: SCALE_DIM,
    metric: usearch.MetricKind.Cos,
    quantization: usearch.ScalarKind.F32,
    connectivity: SCALE_CONFIG.connectivity,
    expansion_add: SCALE_CONFIG.expansionAdd,
    expansion_search: expansionSearch,
    multi: false,
  });
}
