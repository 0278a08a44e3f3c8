/**
 * Run in a separate process by test/rotate-kill.test.ts, then killed with
 * SIGKILL at a random moment. Prints `ready` once the index is open, then:
 *   key PATH NAME OLDHEX NEWHEX   rotateKey old → new → old → … for ever
 *   data PATH NAME KEYHEX         rotateDataKey once, prints `done`
 *   key-once PATH NAME OLDHEX NEWHEX   rotateKey old → new once, prints `done`
 *   revoke PATH NAME KEYHEX USERID     revokeUser once, prints `done`
 *   delete PATH NAME KEYHEX            deleteIndex, prints `done`
 * With KILL_AT_COMPACT=1 the process SIGKILLs itself at LevelDB's first
 * compactRange: after the call's synced batch, before any erasure (each of
 * these calls compacts only to erase, after its batch).
 */
import { ClassicLevel } from 'classic-level';
import { Client } from '../../src/index.js';

if (process.env.KILL_AT_COMPACT === '1') {
  ClassicLevel.prototype.compactRange = function () {
    process.stdout.write('compacting\n');
    process.kill(process.pid, 'SIGKILL');
    return new Promise<void>(() => undefined);
  } as typeof ClassicLevel.prototype.compactRange;
}

const [mode, path, name, a, b] = process.argv.slice(2) as [string, string, string, string, string];
const client = new Client({ path });
const keys = [Buffer.from(a, 'hex'), ...(b && mode !== 'revoke' ? [Buffer.from(b, 'hex')] : [])];
const index = await client.loadIndex({ indexName: name, indexKey: keys[0]! });
process.stdout.write('ready\n');
if (mode === 'key') {
  for (let i = 1; ; i++) {
    await index.rotateKey({ indexKey: keys[i % 2]! });
    process.stdout.write(`rotated ${i}\n`);
  }
} else if (mode === 'key-once') {
  await index.rotateKey({ indexKey: keys[1]! });
} else if (mode === 'revoke') {
  await index.revokeUser({ userId: b });
} else if (mode === 'delete') {
  await index.deleteIndex();
} else {
  await index.rotateDataKey({ onProgress: ({ done }) => process.stdout.write(`progress ${done}\n`) });
}
process.stdout.write('done\n');
process.exit(0);
