/**
 * `npx tsx bench/gc-yield-micro.ts [--seconds 120] [--alternate 1500]`: do pool threads waiting out V8's
 * mark-compact pauses (native/engine/gc-yield.h) shorten those pauses? A 1M-id-string heap (what the 1M build's
 * full GCs mark: bench/stalls.ts) churned by allocation, while two pool threads add to a graph without pause;
 * the waits are turned on and off every `--alternate` ms, and the full-GC pauses that began in each state are
 * compared (same process, same machine load).
 */
import { loadavg } from 'node:os';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadNativeAddon } from '../src/util/native-addon.js';
import { randomFlat } from '../test/support/vectors.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '120' }, alternate: { type: 'string', default: '1500' } } });
const seconds = Number(values.seconds);
const alternate = Number(values.alternate);

interface Handle {
  reserve(members: number): Promise<void>;
  addChunk(keys: BigUint64Array, vectors: Float32Array): Promise<void>;
  close(): Promise<void>;
}
const addon = loadNativeAddon() as {
  NativeIndex: new (dimension: number, metric: string, precision: string, connectivity: number, expansionAdd: number, slots: number) => Handle;
  setGcYield(on: boolean): boolean;
  gcYieldStats(): { hooked: number; pauses: number; yields: number; waitedMs: number };
};

const DIM = 96;
const CHUNK = 256;
let on = true;
const pauses: { on: boolean; ms: number }[] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) pauses.push({ on: stateAt(e.startTime), ms: e.duration });
  }
}).observe({ entryTypes: ['gc'] });
const switches: [number, boolean][] = [];
function stateAt(t: number): boolean {
  let state = true;
  for (const [at, s] of switches) if (at <= t) state = s;
  return state;
}

// The heap a full GC has to mark: 1M id strings, as the 1M build's caller holds.
const ids = Array.from({ length: 1_000_000 }, (_, i) => `id-${i}-${(i * 2654435761) % 1e9}`);

const index = new addon.NativeIndex(DIM, 'cos', 'f32', 16, 128, 6);
const stop = performance.now() + seconds * 1000;
let next = 1;
async function lane(): Promise<void> {
  while (performance.now() < stop) {
    const vectors = randomFlat(CHUNK, DIM, next, true);
    const keys = BigUint64Array.from({ length: CHUNK }, () => BigInt(next++));
    await index.reserve(next + 2 * CHUNK); // both lanes' chunks fit (prepareAdd would reserve for one)
    await index.addChunk(keys, vectors);
  }
}
// Promoted garbage, as an upsert's arrays and objects: survives a few scavenges, then dies.
const kept: unknown[][] = [];
const churn = setInterval(() => {
  kept.push(Array.from({ length: 60_000 }, (_, i) => ({ i, s: ids[i]! })));
  if (kept.length > 20) kept.shift();
}, 20);
addon.setGcYield(on);
switches.push([performance.now(), on]);
const toggler = setInterval(() => {
  on = !on;
  addon.setGcYield(on);
  switches.push([performance.now(), on]);
}, alternate);
const load0 = loadavg()[0]!;
await Promise.all([lane(), lane()]);
clearInterval(churn);
clearInterval(toggler);
addon.setGcYield(true);
await new Promise((r) => setTimeout(r, 100));
await index.close();
for (const state of [true, false]) {
  const ms = pauses.filter((p) => p.on === state).map((p) => p.ms);
  ms.sort((a, b) => a - b);
  const q = (f: number) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(f * ms.length))]!.toFixed(1) : '-');
  console.log(
    `yield ${state ? 'on ' : 'off'}: ${ms.length} mark-compact pauses, p50 ${q(0.5)} p90 ${q(0.9)} max ${q(1)} ms, mean ${(ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length)).toFixed(1)}, > 30 ms: ${ms.filter((x) => x > 30).length}, > 50 ms: ${ms.filter((x) => x > 50).length}`,
  );
}
console.log(`rows added ${next - 1}, ${JSON.stringify(addon.gcYieldStats())}, load ${load0.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}, ids kept ${ids.length}`);
