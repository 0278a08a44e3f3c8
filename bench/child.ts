/**
 * One benchmark job in its own process: loads one dataset, measures one
 * system (bench/lib/runner.ts), sends the result to the parent over IPC.
 * Started by bench/run.ts; not meant to be run by hand.
 */
import { loadPlan, type DatasetPlan } from './lib/data.js';
import { runSystem, type RunParams, type SystemRun } from './lib/runner.js';
import { REFERENCE_SYSTEM, systemByKey } from './systems/index.js';

interface Job {
  plan: DatasetPlan;
  system: string;
  params: RunParams;
}

export async function runJob(job: Job): Promise<SystemRun> {
  const dataset = loadPlan(job.plan);
  const pairWith = job.params.paired && job.system !== REFERENCE_SYSTEM && job.system === 'vecvault' ? systemByKey(REFERENCE_SYSTEM) : undefined;
  return runSystem(systemByKey(job.system), dataset, job.params, pairWith);
}

// If the parent goes away (Ctrl-C, crash), do not linger as an orphan.
process.once('disconnect', () => process.exit(1));

process.once('message', (job: Job) => {
  runJob(job)
    .catch((error: unknown): SystemRun => ({
      system: job.system,
      dataset: job.plan.name,
      status: 'failed',
      reason: (error as Error).message.split('\n')[0],
    }))
    .then((result) => {
      process.send!(result, undefined, {}, () => process.exit(0));
    });
});
