/**
 * Smoke test of the benchmark harness itself (not a benchmark): runs
 * `bench/run.ts` on tiny generated data with one iteration, every system in
 * its own child process as in a real run, and checks the JSON, REPORT.md and
 * SVG it writes. Nothing here looks at speed beyond "a positive number".
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBench } from '../bench/run.js';
import type { BenchResults } from '../bench/lib/results.js';
import { RECALL_TARGET, summarise } from '../bench/lib/results.js';
import type { SystemRun } from '../bench/lib/runner.js';
import { exactNeighbours } from './support/vectors.js';
import { lineChartSvg } from '../bench/lib/svg.js';

describe('benchmark harness (tiny run)', () => {
  let outDir: string;
  let results: BenchResults;
  let fromDisk: BenchResults;
  let report: string;
  let svgPaths: string[];

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'vecvault-bench-smoke-'));
    const lines: string[] = [];
    const run = await runBench({ mode: 'tiny', outDir, log: (line) => lines.push(line) });
    results = run.results;
    svgPaths = run.svgPaths;
    fromDisk = JSON.parse(readFileSync(run.jsonPath, 'utf8')) as BenchResults;
    report = readFileSync(run.reportPath, 'utf8');
  }, 120_000);

  afterAll(() => {
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('writes machine-readable JSON that matches what it returned, with the machine recorded', () => {
    expect(fromDisk).toEqual(JSON.parse(JSON.stringify(results)));
    expect(fromDisk.format).toBe(1);
    expect(fromDisk.mode).toBe('tiny');
    expect(fromDisk.machine.cores).toBeGreaterThan(0);
    expect(fromDisk.machine.cpuModel.length).toBeGreaterThan(0);
    expect(fromDisk.machine.node).toBe(process.version);
    expect(fromDisk.machine.versions.usearch).toMatch(/^\d+\.\d+\.\d+$/);
    expect(fromDisk.machine.commit.length).toBeGreaterThan(0);
  });

  it('runs every system on the generated set, or says why not', () => {
    const tiny = fromDisk.datasets.find((d) => d.name === 'tiny');
    expect(tiny).toBeDefined();
    const keys = tiny!.runs.map((r) => r.system);
    expect(keys[0]).toBe('usearch');
    expect(keys).toEqual(expect.arrayContaining(['usearch', 'vecvault', 'hnswlib', 'lancedb', 'vectra', 'faiss']));
    for (const run of tiny!.runs) {
      // A skip needs a reason; a failure is a broken adapter or system, never acceptable here.
      if (run.status === 'skipped') expect(run.reason).toBeTruthy();
      expect(run.status, `${run.system}: ${run.reason ?? ''}`).not.toBe('failed');
    }
    const faiss = tiny!.runs.find((r) => r.system === 'faiss')!;
    expect(faiss.status).toBe('skipped');
    expect(faiss.reason).toMatch(/npm registry/);
    expect(fromDisk.notRun.map((n) => n.system)).toContain('faiss');
  });

  it('measures every figure for the systems that ran, recall against exact ground truth', () => {
    const tiny = fromDisk.datasets.find((d) => d.name === 'tiny')!;
    const ok = tiny.runs.filter((r): r is Required<SystemRun> => r.status === 'ok');
    expect(ok.map((r) => r.system)).toEqual(expect.arrayContaining(['usearch', 'hnswlib']));
    for (const run of ok) {
      expect(run.insert.vectorsPerSecond).toBeGreaterThan(0);
      expect(run.open.medianMs).toBeGreaterThan(0);
      expect(run.memory.peakMiB).toBeGreaterThan(0);
      expect(run.insert.loopDelay.maxMs).toBeGreaterThanOrEqual(0);
      expect(run.queryLoopDelay.single.samples).toBeGreaterThan(0);
      expect(run.sweep.length).toBeGreaterThan(0);
      for (const p of run.sweep) {
        expect(p.recall).toBeGreaterThanOrEqual(0);
        expect(p.recall).toBeLessThanOrEqual(1);
        expect(p.qpsSingle).toBeGreaterThan(0);
        expect(p.qpsBatch).toBeGreaterThan(0);
      }
    }
    // On 600 clustered vectors an HNSW at ef=64 must find nearly all true neighbours.
    const usearch = ok.find((r) => r.system === 'usearch')!;
    expect(usearch.sweep.find((p) => p.ef === 64)!.recall).toBeGreaterThanOrEqual(0.9);
    const summary = tiny.summaries.find((s) => s.system === 'usearch')!;
    expect(summary.ratios.insert).toBe(1);
    // vecvault (when it ran) is also measured alternately with raw usearch in one process.
    const vecvault = ok.find((r) => r.system === 'vecvault');
    if (vecvault) {
      expect(vecvault.paired.reference).toBe('usearch');
      expect(vecvault.paired.points.map((p) => p.ef)).toEqual(fromDisk.params.efSweep);
      for (const p of vecvault.paired.points) expect(p.singleSubject.length).toBe(p.singleReference.length);
      expect(tiny.summaries.find((s) => s.system === 'vecvault')!.paired).toBeDefined();
    }
  });

  it('measures the cipher layer for both implementations and three sizes', () => {
    expect(Array.isArray(fromDisk.cipher)).toBe(true);
    const rows = fromDisk.cipher as Exclude<BenchResults['cipher'], { error: string }>;
    expect(rows).toHaveLength(12);
    expect(new Set(rows.map((r) => r.bytes))).toEqual(new Set([1024, 4096, 1 << 20]));
    for (const r of rows) expect(r.mbPerSecond).toBeGreaterThan(0);
  });

  it('writes REPORT.md with a row per system and embeds an SVG plot', () => {
    expect(report).toContain('# vecvault benchmark report');
    for (const name of ['raw usearch', 'vecvault', 'hnswlib-node', 'LanceDB', 'Vectra', 'faiss-node']) expect(report).toContain(name);
    expect(report).toContain('## Cipher layer alone: AES-256-GCM');
    expect(report).toContain('![recall@10 vs QPS on tiny](recall-qps-tiny.svg)');
    expect(svgPaths).toHaveLength(1);
    expect(existsSync(svgPaths[0]!)).toBe(true);
    const svg = readFileSync(svgPaths[0]!, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });
});

describe('benchmark helpers', () => {
  it('QPS at the recall target is the best point reaching it, as a ratio to the reference', () => {
    const point = (ef: number, recall: number, qps: number) => ({
      ef,
      recall,
      recallBatch: recall,
      qpsSingle: qps,
      qpsBatch: qps,
      qpsSingleSamples: [qps],
      qpsBatchSamples: [qps],
    });
    const runs: SystemRun[] = [
      { system: 'usearch', dataset: 'd', status: 'ok', sweep: [point(16, 0.9, 1000), point(64, 0.96, 500), point(256, 0.99, 200)] },
      { system: 'other', dataset: 'd', status: 'ok', sweep: [point(64, 0.95, 400), point(256, 0.99, 100)] },
      { system: 'low', dataset: 'd', status: 'ok', sweep: [point(64, RECALL_TARGET - 0.01, 9000)] },
    ];
    const [ref, other, low] = summarise(runs, 'usearch');
    expect(ref!.qpsAtTargetSingle).toBe(500);
    expect(other!.qpsAtTargetSingle).toBe(400);
    expect(other!.ratios.qpsAtTargetSingle).toBeCloseTo(0.8);
    expect(low!.qpsAtTargetSingle).toBeNull();
    expect(low!.ratios.qpsAtTargetSingle).toBeNull();
  });

  it('brute-force ground truth ranks exactly, ties to the smaller row', () => {
    const base = { data: new Float32Array([0, 0, 1, 0, 0, 1, 1, 0, 3, 3]), count: 5, dimension: 2 };
    const queries = { data: new Float32Array([1, 0]), count: 1, dimension: 2 };
    expect(Array.from(exactNeighbours(base, queries, 'euclidean', 3))).toEqual([1, 3, 0]);
    expect(Array.from(exactNeighbours(base, queries, 'cosine', 2))).toEqual([1, 3]);
  });

  it('the SVG writer handles an empty chart and escapes labels', () => {
    const svg = lineChartSvg({ title: 'a < b', xLabel: 'x', yLabel: 'y', series: [{ label: 'R&D', points: [] }] });
    expect(svg).toContain('a &lt; b');
    expect(svg).toContain('R&amp;D');
  });
});
