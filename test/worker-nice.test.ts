/**
 * Graph work runs on threads niced below the JS thread (native/niced-thread.h), so a busy build or compaction
 * cannot take the cores from the event loop (the wall-time effect is measured in bench/worker-nice.ts, not timed
 * here). Each case runs in its own child: the setting is read once per process.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

interface NiceChild {
  nices: Record<string, number>;
  nicedCpu: number;
  totalCpu: number;
}

function niceChild(env: Record<string, string>): NiceChild {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'test/support/child-worker-nice.ts'], {
    env: { ...process.env, VECVAULT_WORKER_NICE: undefined, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as NiceChild;
}

describe.runIf(process.platform === 'linux')('graph work at a lower priority', () => {
  it('runs the inserts on threads at nice 10 by default, and they did most of the CPU work', () => {
    const child = niceChild({});
    expect(child.nices['10']).toBeGreaterThanOrEqual(1);
    // The graph inserts of 20k vectors dominate the process's CPU: if they ran elsewhere, the niced threads would be idle.
    expect(child.nicedCpu).toBeGreaterThan(0.3 * child.totalCpu);
  });

  it('takes the nice value from VECVAULT_WORKER_NICE', () => {
    const child = niceChild({ VECVAULT_WORKER_NICE: '5' });
    expect(child.nices['5']).toBeGreaterThanOrEqual(1);
    expect(child.nices['10']).toBeUndefined();
    expect(child.nicedCpu).toBeGreaterThan(0.3 * child.totalCpu);
  });

  it('control: with VECVAULT_WORKER_NICE=0 every thread keeps the JS thread priority', () => {
    const child = niceChild({ VECVAULT_WORKER_NICE: '0' });
    expect(Object.keys(child.nices)).toEqual(['0']);
    expect(child.nicedCpu).toBe(0);
  });
});
