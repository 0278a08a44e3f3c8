/** Turns a BenchResults into REPORT.md and one recall/QPS SVG per dataset. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CipherRow } from '../cipher.js';
import type { BenchResults, DatasetResult, SystemSummary } from './results.js';
import { RECALL_TARGET } from './results.js';
import type { SystemRun } from './runner.js';
import { lineChartSvg } from './svg.js';

const GOALS = { qps: 0.9, insert: 0.8, open: 2, stallMs: 50 };

function num(v: number | null | undefined, digits = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1e4) return Math.round(v).toLocaleString('en-US');
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function x(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`;
}

function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

export function svgFileName(dataset: string): string {
  return `recall-qps-${dataset}.svg`;
}

function label(results: BenchResults, key: string): string {
  return results.systems.find((s) => s.key === key)?.label ?? key;
}

function summaryOf(ds: DatasetResult, key: string): SystemSummary | undefined {
  return ds.summaries.find((s) => s.system === key);
}

function maxStall(run: SystemRun | undefined): number | null {
  if (!run || run.status !== 'ok') return null;
  return Math.max(run.insert!.loopDelay.maxMs, run.queryLoopDelay!.single.maxMs, run.queryLoopDelay!.batch.maxMs);
}

function headline(results: BenchResults): string[] {
  const out: string[] = ['## vecvault against raw usearch (same run, ratios)', ''];
  const anyVecvault = results.datasets.some((ds) => ds.runs.some((r) => r.system === 'vecvault' && r.status === 'ok'));
  if (!anyVecvault) {
    const why = results.datasets.flatMap((ds) => ds.runs).find((r) => r.system === 'vecvault')?.reason ?? 'not selected for this run';
    out.push(`vecvault did not run: ${why}.`, '');
    return out;
  }
  out.push(
    `Goals (docs/performance.md): QPS at recall@10 ≥ ${RECALL_TARGET} ≥ ${GOALS.qps}×, upsert ≥ ${GOALS.insert}×, open ≤ ${GOALS.open}× raw usearch load, event loop never stalled > ${GOALS.stallMs} ms. Reported, never enforced.`,
    '',
    'QPS ratios come from passes of vecvault and raw usearch alternated in one process (both see the same machine load); in brackets, the same ratio from the separate per-system runs below, which drift with the load of a shared machine.',
    '',
    '| dataset | QPS@0.95 single | QPS@0.95 batched | upsert vs add | open vs load | peak RSS Δ | max loop stall (vecvault / usearch) |',
    '|---|---|---|---|---|---|---|',
  );
  for (const ds of results.datasets) {
    const s = summaryOf(ds, 'vecvault');
    const vv = ds.runs.find((r) => r.system === 'vecvault');
    const us = ds.runs.find((r) => r.system === 'usearch');
    if (!s) {
      out.push(`| ${ds.name} | ${vv?.status ?? 'not run'}: ${vv?.reason ?? ''} | | | | | |`);
      continue;
    }
    out.push(
      `| ${ds.name} | ${x(s.paired?.qpsAtTargetSingle)} (${x(s.ratios.qpsAtTargetSingle)}) | ${x(s.paired?.qpsAtTargetBatch)} (${x(s.ratios.qpsAtTargetBatch)}) | ${x(s.ratios.insert)} | ${x(s.ratios.open)} | ${x(s.ratios.peakMemory)} | ${ms(maxStall(vv))} / ${ms(maxStall(us))} |`,
    );
  }
  const med = (values: (number | null | undefined)[]) => {
    const v = values.filter((n): n is number => typeof n === 'number' && Number.isFinite(n)).sort((a, b) => a - b);
    if (!v.length) return null;
    return v.length % 2 ? v[v.length >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  const all = results.datasets.map((ds) => summaryOf(ds, 'vecvault')).filter((s): s is SystemSummary => Boolean(s));
  const stalls = results.datasets.map((ds) => maxStall(ds.runs.find((r) => r.system === 'vecvault'))).filter((n): n is number => n !== null);
  const usStalls = results.datasets.map((ds) => maxStall(ds.runs.find((r) => r.system === 'usearch'))).filter((n): n is number => n !== null);
  if (all.length > 1) {
    out.push(
      `| **median over datasets** (worst stall) | ${x(med(all.map((s) => s.paired?.qpsAtTargetSingle)))} (${x(med(all.map((s) => s.ratios.qpsAtTargetSingle)))}) | ${x(med(all.map((s) => s.paired?.qpsAtTargetBatch)))} (${x(med(all.map((s) => s.ratios.qpsAtTargetBatch)))}) | ${x(med(all.map((s) => s.ratios.insert)))} | ${x(med(all.map((s) => s.ratios.open)))} | ${x(med(all.map((s) => s.ratios.peakMemory)))} | ${ms(stalls.length ? Math.max(...stalls) : null)} / ${ms(usStalls.length ? Math.max(...usStalls) : null)} |`,
    );
  }
  out.push('', '"–" in a QPS column: that system (or raw usearch) never reached recall@10 ≥ 0.95 on the ef sweep.', '');
  return out;
}

function datasetSection(results: BenchResults, ds: DatasetResult): string[] {
  const out: string[] = [
    `### ${ds.name}`,
    '',
    `${ds.description}. Plot: single-query QPS (log) against recall@10 over the ef sweep.`,
    '',
    `![recall@10 vs QPS on ${ds.name}](${svgFileName(ds.name)})`,
    '',
  ];
  out.push(
    '| system | insert vec/s (× usearch) | open+1st query (× usearch) | rebuild ÷ open | peak RSS (Δ) MiB | recall@10 at ef=64 | best QPS@0.95 single (ef) | × usearch | QPS@0.95 batched | × usearch | loop stall insert max / p99 | loop stall query max / p99 (single · batch) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const run of ds.runs) {
    const name = label(results, run.system);
    if (run.status !== 'ok') {
      out.push(`| ${name} | ${run.status}: ${run.reason ?? ''} | | | | | | | | | | |`);
      continue;
    }
    const s = summaryOf(ds, run.system);
    const at64 = run.sweep!.find((p) => p.ef === 64) ?? run.sweep![0];
    const qd = run.queryLoopDelay!;
    out.push(
      [
        name,
        `${num(run.insert!.vectorsPerSecond)} (${x(s?.ratios.insert)})`,
        `${ms(run.open!.medianMs)} (${x(s?.ratios.open)})`,
        `${num(run.rebuildOverOpen, 1)}×`,
        `${num(run.memory!.peakMiB)} (${num(run.memory!.peakDeltaMiB)})`,
        `${num(at64?.recall, 3)}${at64?.ef === null ? ' (exact scan)' : ''}`,
        s?.qpsAtTargetSingle ? `${num(s.qpsAtTargetSingle)} (${s.efAtTargetSingle ?? 'n/a'})` : `– (max recall ${num(s?.maxRecall, 3)})`,
        x(s?.ratios.qpsAtTargetSingle),
        num(s?.qpsAtTargetBatch),
        x(s?.ratios.qpsAtTargetBatch),
        `${ms(run.insert!.loopDelay.maxMs)} / ${ms(run.insert!.loopDelay.p99Ms)}`,
        `${ms(qd.single.maxMs)} / ${ms(qd.single.p99Ms)} · ${ms(qd.batch.maxMs)} / ${ms(qd.batch.p99Ms)}`,
      ]
        .join(' | ')
        .replace(/^/, '| ') + ' |',
    );
  }
  out.push('');
  const loads = ds.runs.filter((r) => r.loadAverage1m !== undefined && r.status !== 'skipped');
  if (loads.length)
    out.push(
      `1-minute load average as each system started (${results.machine.cores} cores): ${loads.map((r) => `${label(results, r.system)} ${r.loadAverage1m}`).join(', ')}.`,
      '',
    );
  for (const run of ds.runs) if (run.note) out.push(`Note (${label(results, run.system)}): ${run.note}.`, '');
  out.push('<details><summary>ef sweep (median QPS; recall@10 against exact ground truth)</summary>', '');
  out.push(
    '| system | ef | recall@10 | QPS single | × usearch same ef | QPS batched | × usearch same ef | recall@10 batched |',
    '|---|---|---|---|---|---|---|---|',
  );
  const ref = ds.runs.find((r) => r.system === 'usearch' && r.status === 'ok');
  for (const run of ds.runs) {
    if (run.status !== 'ok') continue;
    for (const p of run.sweep!) {
      const same = p.ef === null ? undefined : ref?.sweep?.find((q) => q.ef === p.ef);
      out.push(
        `| ${label(results, run.system)} | ${p.ef ?? 'n/a'} | ${num(p.recall, 3)} | ${num(p.qpsSingle)} | ${x(same ? p.qpsSingle / same.qpsSingle : null)} | ${num(p.qpsBatch)} | ${x(same ? p.qpsBatch / same.qpsBatch : null)} | ${num(p.recallBatch, 3)} |`,
      );
    }
  }
  out.push('', '</details>', '');
  const pairedSummary = summaryOf(ds, 'vecvault')?.paired;
  if (pairedSummary) {
    out.push(
      `vecvault ÷ raw usearch at the same ef, alternating passes in one process (median of per-pass ratios): ${pairedSummary.sameEf
        .map((p) => `ef=${p.ef}: single ${x(p.single)}, batched ${x(p.batch)} (recall ${num(p.recallSubject, 3)} vs ${num(p.recallReference, 3)})`)
        .join('; ')}.`,
      '',
    );
  }
  const vv = ds.runs.find((r) => r.system === 'vecvault' && r.extras);
  if (vv?.extras) {
    const e = vv.extras;
    out.push(
      `vecvault extras on ${ds.name} (ef=64, single queries): QPS with \`include: []\` ${num(e.queryQpsNoInclude)}, with \`['metadata']\` ${num(e.queryQpsIncludeMetadata)} (${x(e.includeMetadataCostRatio)}), with \`['distance','metadata']\` ${num(e.queryQpsIncludeDistanceMetadata)}; \`get\` of 10 random ids: ${num(e.getCallsPerSecond10Ids)} calls/s (all fields), ${num(e.getMetadataOnlyCallsPerSecond10Ids)} calls/s (metadata only).`,
      '',
    );
  }
  return out;
}

function cipherSection(cipher: CipherRow[] | { error: string }): string[] {
  const out = ['## Cipher layer alone: AES-256-GCM', ''];
  if (!Array.isArray(cipher)) return [...out, `Not measured: ${cipher.error}`, ''];
  out.push(
    'Median of tinybench samples; each call seals/opens one buffer (12-byte nonce, 16-byte tag). Both implementations were checked to produce identical bytes first.',
    '',
  );
  out.push('| buffer | operation | @noble/ciphers ops/s | MB/s | node:crypto ops/s | MB/s | node ÷ noble |', '|---|---|---|---|---|---|---|');
  const sizes = [...new Set(cipher.map((r) => r.bytes))];
  for (const size of sizes) {
    for (const op of ['encrypt', 'decrypt'] as const) {
      const noble = cipher.find((r) => r.bytes === size && r.operation === op && r.implementation === 'noble');
      const node = cipher.find((r) => r.bytes === size && r.operation === op && r.implementation === 'node:crypto');
      const sz = size >= 1 << 20 ? `${size / (1 << 20)} MiB` : `${size / 1024} KiB`;
      out.push(
        `| ${sz} | ${op} | ${num(noble?.opsPerSecond)} | ${num(noble?.mbPerSecond, 1)} | ${num(node?.opsPerSecond)} | ${num(node?.mbPerSecond, 1)} | ${x(node && noble ? node.opsPerSecond / noble.opsPerSecond : null)} |`,
      );
    }
  }
  out.push('');
  return out;
}

export function renderReport(results: BenchResults, jsonName: string): string {
  const m = results.machine;
  const p = results.params;
  const out: string[] = [
    '# vecvault benchmark report',
    '',
    `Generated by \`${results.command}\` (${results.mode} run) on ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC in ${num(results.durationSeconds)} s. Raw data: \`${jsonName}\` (not committed; re-run to get it).`,
    '',
    '| machine | |',
    '|---|---|',
    `| CPU | ${m.cpuModel} |`,
    `| cores | ${m.cores} |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| load average (1 min) at start | ${m.loadAverage1m} |`,
    `| OS | ${m.platform} |`,
    `| Node.js | ${m.node} |`,
    `| vecvault commit | ${m.commit} |`,
    ...Object.entries(m.versions).map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `Parameters: k=${p.k}; HNSW M=${p.connectivity}, ef_add=${p.expansionAdd}; ef sweep ${p.efSweep.join(', ')}; default ef=${p.defaultEf}; ${p.iterations} timed repetitions per figure (medians), each pass ≥ ${p.minPassMs} ms; recall on ${p.recallQueries ? `the first ${p.recallQueries} queries` : 'all queries'} of each set; batched passes of ${p.batchSize ?? 'all those'} queries per call. Machines here are shared and noisy: read the ratios (measured side by side in this run), not the absolute numbers.`,
    '',
    ...headline(results),
    '## Systems',
    '',
    '| system | index used here | "batched" means |',
    '|---|---|---|',
    ...results.systems.map((s) => `| ${s.label} | ${s.indexKind} | ${s.batchMode} |`),
    '',
    ...(results.notRun.length ? ['Could not run here:', '', ...results.notRun.map((n) => `- **${n.label}**: ${n.reason}`), ''] : []),
    '## Results per dataset',
    '',
  ];
  if (results.skippedDatasets.length) {
    out.push('Skipped datasets:', '', ...results.skippedDatasets.map((s) => `- ${s.name}: ${s.reason}`), '');
  }
  for (const ds of results.datasets) out.push(...datasetSection(results, ds));
  out.push(...cipherSection(results.cipher));
  out.push(
    '## How to read this',
    '',
    '- **recall@10**: share of the exact 10 nearest neighbours (from the ground-truth files, or brute force for generated sets) that a system returned; never scored against another engine.',
    '- **QPS@0.95**: the best median queries/s among ef sweep points whose recall@10 ≥ 0.95; "single" issues one query per call and awaits it, "batched" uses the system\'s batch path (see Systems).',
    '- **insert vec/s**: whole-dataset insert, including any index build/training a system does (LanceDB: table write + IVF_HNSW_SQ build; vecvault: encrypted upsert with a `{ row }` metadata object per vector).',
    '- **open+1st query**: time to open the persisted index from disk and answer one query (median); "rebuild ÷ open" compares it with inserting everything again.',
    "- **peak RSS**: each system runs in its own child process; the figure is that process's peak RSS, and Δ is peak minus RSS after the dataset was loaded (the dataset itself and the harness are in both).",
    '- **loop stall**: `perf_hooks.monitorEventLoopDelay` (5 ms resolution) during the insert, during single queries issued one per macrotask, and during one batched call. A synchronous native call shows up as one stall as long as the call.',
    '',
  );
  return `${out.join('\n')}\n`;
}

export function writeCharts(results: BenchResults, outDir: string): string[] {
  const files: string[] = [];
  for (const ds of results.datasets) {
    const series = ds.runs
      .filter((r) => r.status === 'ok' && r.sweep && r.sweep.length)
      .map((r) => ({ label: label(results, r.system), points: r.sweep!.map((p) => ({ x: p.recall, y: p.qpsSingle })) }));
    const file = svgFileName(ds.name);
    writeFileSync(
      join(outDir, file),
      lineChartSvg({
        title: `${ds.name}: recall@10 vs single-query QPS (${results.mode} run)`,
        xLabel: 'recall@10',
        yLabel: 'queries per second (log)',
        series,
        threshold: RECALL_TARGET,
      }),
    );
    files.push(file);
  }
  return files;
}
