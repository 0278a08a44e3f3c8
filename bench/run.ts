/**
 * vecvault's benchmark suite: `npm run bench` (full) or `npm run bench -- --quick`.
 *
 * Every (dataset, system) pair runs in its own child process (bench/child.ts),
 * one after another, so peak RSS is per system and one crash cannot take the
 * run down. Results go to `<out>/<date>[-quick].json`, `<out>/REPORT.md` and
 * one recall/QPS SVG per dataset. Nothing here ever fails on speed.
 *
 * Options: --quick | --tiny (smoke test data), --out DIR, --datasets a,b,
 * --systems a,b, --iterations N, --min-pass-ms N, --ef 16,32,…, --in-process.
 */
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCipherBench } from './cipher.js';
import { ensureGenerated, loadPlan, planDatasets, syntheticSpec, type DatasetPlan, type RunMode } from './lib/data.js';
import { machineInfo } from './lib/machine.js';
import { renderReport, writeCharts } from './lib/report.js';
import { summarise, type BenchResults, type DatasetResult } from './lib/results.js';
import { runSystem, type RunParams, type SystemRun } from './lib/runner.js';
import { REFERENCE_SYSTEM, SYSTEMS, systemByKey } from './systems/index.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export interface BenchOptions {
  mode: RunMode;
  outDir: string;
  datasets?: string[];
  systems?: string[];
  iterations?: number;
  minPassMs?: number;
  efSweep?: number[];
  /** Run every job in this process (no per-system RSS); for debugging. */
  inProcess?: boolean;
  command?: string;
  log?: (line: string) => void;
}

export function paramsFor(mode: RunMode, overrides: Pick<BenchOptions, 'iterations' | 'minPassMs' | 'efSweep'> = {}): RunParams {
  const base: RunParams =
    mode === 'full'
      ? {
          k: 10,
          connectivity: 16,
          expansionAdd: 128,
          defaultEf: 64,
          efSweep: [16, 32, 64, 128, 256],
          paired: true,
          iterations: 5,
          minPassMs: 300,
          recallQueries: null,
          batchSize: null,
          quick: false,
        }
      : mode === 'quick'
        ? {
            k: 10,
            connectivity: 16,
            expansionAdd: 128,
            defaultEf: 64,
            efSweep: [16, 32, 64, 128, 256],
            paired: true,
            iterations: 3,
            minPassMs: 50,
            recallQueries: 100,
            batchSize: 100,
            quick: true,
          }
        : {
            k: 10,
            connectivity: 16,
            expansionAdd: 128,
            defaultEf: 64,
            efSweep: [16, 64],
            paired: true,
            iterations: 1,
            minPassMs: 5,
            recallQueries: null,
            batchSize: null,
            quick: true,
          };
  return {
    ...base,
    ...(overrides.iterations ? { iterations: overrides.iterations } : {}),
    ...(overrides.minPassMs ? { minPassMs: overrides.minPassMs } : {}),
    ...(overrides.efSweep?.length ? { efSweep: overrides.efSweep } : {}),
  };
}

const TIMEOUT_MS: Record<RunMode, number> = { full: 3_600_000, quick: 150_000, tiny: 90_000 };

function runInChild(plan: DatasetPlan, system: string, params: RunParams, timeoutMs: number): Promise<SystemRun> {
  const require = createRequire(import.meta.url);
  const tsxLoader = pathToFileURL(require.resolve('tsx')).href;
  return new Promise((resolveRun) => {
    let settled = false;
    const child = fork(join(BENCH_DIR, 'child.ts'), [], {
      execArgv: ['--import', tsxLoader, '--expose-gc'],
      env: { ...process.env, LANCEDB_LOG: process.env.LANCEDB_LOG ?? 'error' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const finish = (run: SystemRun) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolveRun(run);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({ system, dataset: plan.name, status: 'failed', reason: `timed out after ${timeoutMs / 1000} s` });
    }, timeoutMs);
    child.once('message', (run: SystemRun) => finish(run));
    child.once('error', (error) => finish({ system, dataset: plan.name, status: 'failed', reason: `child process: ${error.message}` }));
    child.once('exit', (code, signal) =>
      finish({ system, dataset: plan.name, status: 'failed', reason: `child process exited (${signal ?? `code ${code}`}) without a result` }),
    );
    child.send({ plan, system, params });
  });
}

function fmt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(n >= 10 ? 0 : 2);
}

function progressLine(run: SystemRun): string {
  if (run.status !== 'ok') return `${run.status}: ${run.reason}`;
  const at64 = run.sweep!.find((p) => p.ef === 64) ?? run.sweep![0];
  const best = run.sweep!.filter((p) => p.recall >= 0.95).reduce<number | null>((b, p) => (b === null || p.qpsSingle > b ? p.qpsSingle : b), null);
  return `insert ${fmt(run.insert!.vectorsPerSecond)} vec/s, open ${run.open!.medianMs.toFixed(1)} ms, recall@10(ef=64) ${at64?.recall.toFixed(3)}, QPS@0.95 ${fmt(best)}, peak RSS ${run.memory!.peakMiB.toFixed(0)} MiB (${run.durationSeconds!.toFixed(1)} s)`;
}

export async function runBench(options: BenchOptions): Promise<{ results: BenchResults; jsonPath: string; reportPath: string; svgPaths: string[] }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const started = new Date();
  const t0 = performance.now();
  const params = paramsFor(options.mode, options);
  const machine = machineInfo();
  log(`vecvault bench (${options.mode}): ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}, usearch ${machine.versions.usearch}`);

  const systems = (options.systems?.length ? options.systems.map(systemByKey) : SYSTEMS).filter(Boolean);
  // Raw usearch always runs first: every ratio is against it.
  if (!systems.some((s) => s.key === REFERENCE_SYSTEM)) systems.unshift(systemByKey(REFERENCE_SYSTEM));
  systems.sort((a, b) => Number(b.key === REFERENCE_SYSTEM) - Number(a.key === REFERENCE_SYSTEM));

  const { plans, skipped } = planDatasets(options.mode, options.datasets);
  for (const s of skipped) log(`skip dataset ${s.name}: ${s.reason}`);
  const synth = syntheticSpec(options.mode);
  if (plans.some((p) => p.name === synth.name)) {
    const seconds = ensureGenerated(synth);
    if (seconds > 0) log(`generated ${synth.name} with exact ground truth in ${seconds.toFixed(1)} s`);
  }

  const notRun: BenchResults['notRun'] = [];
  const datasets: DatasetResult[] = [];
  for (const plan of plans) {
    const data = loadPlan(plan);
    const runs: SystemRun[] = [];
    for (const system of systems) {
      const reason = await system.unavailable({ metric: plan.metric, count: data.base.count, dimension: data.base.dimension, quick: params.quick });
      if (reason) {
        log(`[${plan.name}] ${system.label}: skipped: ${reason}`);
        runs.push({ system: system.key, dataset: plan.name, status: 'skipped', reason });
        if (!notRun.some((n) => n.system === system.key) && system.key === 'faiss') notRun.push({ system: system.key, label: system.label, reason });
        continue;
      }
      const pairWith = params.paired && system.key === 'vecvault' ? systemByKey(REFERENCE_SYSTEM) : undefined;
      const run = options.inProcess ? await runSystem(system, data, params, pairWith) : await runInChild(plan, system.key, params, TIMEOUT_MS[options.mode]);
      log(`[${plan.name}] ${system.label}: ${progressLine(run)}`);
      runs.push(run);
    }
    datasets.push({
      name: plan.name,
      description: plan.description,
      metric: plan.metric,
      count: data.base.count,
      dimension: data.base.dimension,
      queries: data.queries.count,
      runs,
      summaries: summarise(runs, REFERENCE_SYSTEM),
    });
  }

  let cipher: BenchResults['cipher'];
  try {
    const timeMs = options.mode === 'full' ? 500 : options.mode === 'quick' ? 150 : 5;
    cipher = await runCipherBench({ timeMs, minIterations: options.mode === 'tiny' ? 2 : 10 });
    log(`cipher: ${cipher.length} AES-256-GCM figures`);
  } catch (error) {
    cipher = { error: (error as Error).message };
    log(`cipher bench failed: ${cipher.error}`);
  }

  const results: BenchResults = {
    format: 1,
    mode: options.mode,
    command: options.command ?? `npm run bench${options.mode === 'quick' ? ' -- --quick' : options.mode === 'tiny' ? ' -- --tiny' : ''}`,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSeconds: (performance.now() - t0) / 1000,
    machine,
    params,
    datasets,
    skippedDatasets: skipped,
    systems: systems.map((s) => ({ key: s.key, label: s.label, indexKind: s.indexKind, batchMode: s.batchMode })),
    notRun,
    cipher,
  };

  mkdirSync(options.outDir, { recursive: true });
  const suffix = options.mode === 'full' ? '' : `-${options.mode}`;
  const jsonName = `${started.toISOString().slice(0, 10)}${suffix}.json`;
  const jsonPath = join(options.outDir, jsonName);
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  const svgPaths = writeCharts(results, options.outDir).map((f) => join(options.outDir, f));
  const reportPath = join(options.outDir, 'REPORT.md');
  writeFileSync(reportPath, renderReport(results, jsonName));
  log(
    `wrote ${relative(process.cwd(), jsonPath)}, ${relative(process.cwd(), reportPath)} and ${svgPaths.length} SVG plot(s) in ${results.durationSeconds.toFixed(0)} s`,
  );
  return { results, jsonPath, reportPath, svgPaths };
}

export function parseArgs(argv: readonly string[]): BenchOptions {
  const options: BenchOptions = { mode: 'full', outDir: join(BENCH_DIR, 'results') };
  const list = (v: string | undefined) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.mode = 'quick';
    else if (arg === '--tiny') options.mode = 'tiny';
    else if (arg === '--full') options.mode = 'full';
    else if (arg === '--out') options.outDir = resolve(value());
    else if (arg === '--datasets') options.datasets = list(value());
    else if (arg === '--systems') options.systems = list(value());
    else if (arg === '--iterations') options.iterations = Number(value());
    else if (arg === '--min-pass-ms') options.minPassMs = Number(value());
    else if (arg === '--ef') options.efSweep = list(value()).map(Number);
    else if (arg === '--in-process') options.inProcess = true;
    else if (arg === '--help' || arg === '-h') {
      console.log(
        'usage: npm run bench [-- --quick] [--out DIR] [--datasets glove25,sift5k,glove50,fashion-mnist,synthetic] [--systems usearch,vecvault,hnswlib,lancedb,vectra] [--iterations N] [--min-pass-ms N] [--ef 16,32,64] [--in-process]',
      );
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (try --help)`);
  }
  options.command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  return options;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  runBench(parseArgs(process.argv.slice(2))).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
