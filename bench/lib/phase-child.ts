/**
 * One phase of a bench in a fresh child process, so resident-set figures and
 * stalls are not polluted by an earlier phase or the other system: the parent
 * forks the bench's own module with `flag`, the child runs the phase, sends its
 * result over IPC and exits.
 */
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Forks `moduleUrl` (tsx, `--expose-gc`, `nodeFlags`) as the child of `phase` and resolves with what it sent. */
export function runPhaseChild<R>(moduleUrl: string, flag: string, phase: string, n: number, dir: string, nodeFlags: string[] = []): Promise<R> {
  const tsxLoader = pathToFileURL(createRequire(moduleUrl).resolve('tsx')).href;
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(moduleUrl), [flag, phase, String(n), dir], {
      execArgv: ['--import', tsxLoader, '--expose-gc', ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: R | undefined;
    child.once('message', (m) => (result = m as R));
    child.once('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`${phase} child exited with ${code}`))));
  });
}

/** In a child forked by `runPhaseChild` with `flag`: runs its phase, sends the result and exits. Whether this process is one. */
export function servePhaseChild<P extends string, R>(flag: string, run: (phase: P, n: number, dir: string) => Promise<R>): boolean {
  if (process.argv[2] !== flag) return false;
  process.once('disconnect', () => process.exit(1));
  const [phase, n, dir] = process.argv.slice(3) as [P, string, string];
  run(phase, Number(n), dir).then(
    (result) => process.send!(result, undefined, {}, () => process.exit(0)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
  return true;
}
