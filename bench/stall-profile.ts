/**
 * `npx tsx bench/stall-profile.ts RESULTS.json PROFILE.cpuprofile [--min 50] [--phase build]`: what the main thread ran
 * inside each stall of a `bench/stalls.ts --json RESULTS.json --node-flag --cpu-prof` run. A profile sample is main-thread
 * CPU time (one per `--cpu-prof-interval` µs), so a stall with few samples was spent off the CPU (GC helper threads,
 * the run queue), and one full of samples names the JS or native call that held the loop. Profile timestamps and the
 * stalls' `mono` are both CLOCK_MONOTONIC.
 */
import { readFileSync } from 'node:fs';
import type { Stall } from './stalls.js'; // the type only: importing stalls.ts for real would run it

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [resultsPath, profilePath] = process.argv.slice(2);
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const minMs = Number(arg('--min') ?? 50);
const phase = arg('--phase') ?? 'build';
if (!resultsPath || !profilePath) throw new Error('usage: stall-profile.ts RESULTS.json PROFILE.cpuprofile [--min 50] [--phase build]');

const results = JSON.parse(readFileSync(resultsPath, 'utf8')) as { results: Record<string, { name: string; stalls: Stall[] }[]> };
const profile = JSON.parse(readFileSync(profilePath, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const frame = (n: Node) =>
  `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*\/(src|bench|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
/** The sampled stack, innermost first, without V8's root frames. */
function stack(id: number): string[] {
  const out: string[] = [];
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at)!;
    if (n.callFrame.functionName === '(root)') break;
    out.push(frame(n));
  }
  return out;
}

// Sample times, µs on CLOCK_MONOTONIC.
const times = new Float64Array(profile.samples.length);
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) times[i] = t += profile.timeDeltas[i]!;

for (const sub of results.results[phase] ?? []) {
  const stalls = sub.stalls.filter((s) => s.ms > minMs);
  console.log(`\n== ${phase}/${sub.name}: ${stalls.length} stalls > ${minMs} ms`);
  for (const s of stalls) {
    const from = s.mono * 1000;
    const to = from + s.ms * 1000;
    const self = new Map<string, number>();
    const stacks = new Map<string, number>();
    let count = 0;
    for (let i = 0; i < times.length; i++) {
      if (times[i]! < from || times[i]! > to) continue;
      count++;
      const st = stack(profile.samples[i]!);
      const top = st[0] ?? '(none)';
      self.set(top, (self.get(top) ?? 0) + 1);
      const key = st.slice(0, 6).join(' < ');
      stacks.set(key, (stacks.get(key) ?? 0) + 1);
    }
    console.log(`-- at ${s.at} ms: ${s.ms} ms (cpu ${s.cpuMs}, wait ${s.waitMs}) gc [${s.gcs.join(', ')}] native [${s.natives.join(', ')}]: ${count} samples`);
    for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 6)) console.log(`   self ${v}: ${k}`);
    for (const [k, v] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 4)) console.log(`   stack ${v}: ${k}`);
  }
}
