/**
 * After a graph is built or loaded: find the live records it cannot reach
 * (usearch leaves a few after builds and slot reuse; no search at any ef
 * returns them) and relink them, off the main thread. The summary of the
 * last run shows in `stats().graphCheck`.
 */
import type { AnnEngine } from '../engine/types.js';

export type GraphCheckAfter = 'rebuild' | 'compaction' | 'snapshot';

export interface GraphCheckSummary {
  /** What built or loaded the graph that was checked. */
  after: GraphCheckAfter;
  /** Live records the graph could not reach. */
  unreachable: number;
  /** Relinks performed to reach them. */
  relinked: number;
  /** Still unreachable afterwards (0 unless the repair's round bound was hit). */
  remaining: number;
}

/** Checks and repairs `engine`'s graph; null when the engine has no check. */
export async function repairGraph(engine: AnnEngine, after: GraphCheckAfter): Promise<GraphCheckSummary | null> {
  if (!engine.checkGraph) return null;
  const { unreachable, relinked, remaining } = await engine.checkGraph({ repair: true });
  return { after, unreachable, relinked, remaining };
}
