/**
 * With VECVAULT_HUGE_PAGES=1, usearch's arenas from 16 MiB up (each
 * allocator's second on) start on a 2 MiB boundary and are marked
 * MADV_HUGEPAGE (native/engine/usearch.h), so a kernel with transparent huge
 * pages in `madvise` mode backs the graph with 2 MiB pages. What this checks,
 * each build in its own process (test/support/child-huge-pages.ts): with the
 * switch on, a graph past the first arena gets huge pages; by default and
 * with VECVAULT_HUGE_PAGES=0 (the negative controls) it gets none; the
 * graph's bytes are the same either way; and a small index stays on 4 KiB
 * pages even with the switch on.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
const mode = existsSync(THP) ? (/\[(\w+)\]/.exec(readFileSync(THP, 'utf8'))?.[1] ?? 'never') : 'never';

interface Built {
  arenas: number;
  hugeKiB: number;
  graph: string;
}

function build(count: number, setting: string | undefined): Built {
  const env = { ...process.env };
  if (setting === undefined) delete env.VECVAULT_HUGE_PAGES;
  else env.VECVAULT_HUGE_PAGES = setting;
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'test/support/child-huge-pages.ts', String(count)], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
  return JSON.parse(out) as Built;
}

describe.skipIf(mode === 'never')(`usearch's arenas on transparent huge pages (kernel mode: ${mode})`, () => {
  it('backs a 30k × 96 graph with huge pages with VECVAULT_HUGE_PAGES=1; by default and with =0 none; the same graph bytes every way', () => {
    const on = build(30_000, '1');
    const byDefault = build(30_000, undefined);
    const off = build(30_000, '0');
    // The vectors (11 MiB) outgrow their first arena (8 MiB): the next, 16 MiB, is advised.
    expect(on.arenas).toBeGreaterThanOrEqual(1);
    expect(on.hugeKiB).toBeGreaterThanOrEqual(2048);
    for (const without of [byDefault, off]) {
      expect(without.arenas).toBe(0);
      // In `always` mode the kernel may use huge pages without being asked.
      if (mode === 'madvise') expect(without.hugeKiB).toBe(0);
      expect(without.graph).toBe(on.graph);
    }
  }, 180_000);

  it('keeps a small index on 4 KiB pages even with VECVAULT_HUGE_PAGES=1 (its graph fits the first arena)', () => {
    const small = build(2_000, '1');
    expect(small.arenas).toBe(0);
    if (mode === 'madvise') expect(small.hugeKiB).toBe(0);
  }, 60_000);
});
