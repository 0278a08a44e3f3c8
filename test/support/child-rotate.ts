/**
 * Run in a separate process by test/rotate-kill.test.ts, then killed with
 * SIGKILL at a random moment. Prints `ready` once the index is open, then:
 *   key PATH NAME OLDHEX NEWHEX   rotateKey old → new → old → … for ever
 *   data PATH NAME KEYHEX         rotateDataKey once, prints `done`
 */
import { Client } from '../../src/index.js';

const [mode, path, name, a, b] = process.argv.slice(2) as [string, string, string, string, string];
const client = new Client({ path });
const keys = [Buffer.from(a, 'hex'), ...(b ? [Buffer.from(b, 'hex')] : [])];
const index = await client.loadIndex({ indexName: name, indexKey: keys[0]! });
process.stdout.write('ready\n');
if (mode === 'key') {
  for (let i = 1; ; i++) {
    await index.rotateKey({ indexKey: keys[i % 2]! });
    process.stdout.write(`rotated ${i}\n`);
  }
} else {
  await index.rotateDataKey({ onProgress: ({ done }) => process.stdout.write(`progress ${done}\n`) });
  process.stdout.write('done\n');
  process.exit(0);
}
