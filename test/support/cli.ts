/** Runs the `vecvault` CLI (src/cli/main.ts under tsx) in a child process, as a fresh clone would. */
import { execFile } from 'node:child_process';

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Asynchronous, so a server in the test process (the loopback KMS) can answer the child; VECVAULT_INDEX_KEY is cleared unless given. */
export function vecvaultAsync(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { encoding: 'utf8', env: { ...process.env, VECVAULT_INDEX_KEY: '', ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ status: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}
