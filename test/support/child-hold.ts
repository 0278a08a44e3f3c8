/** Run in a separate process: opens the store, says "ready", and holds it until stdin closes. */
import { Client } from '../../src/index.js';

const client = new Client({ path: process.argv[2]! });
await client.listIndexes();
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => void client.close().then(() => process.exit(0)));
