/**
 * SoftHSM2 for tests: a private token directory and SOFTHSM2_CONF under a
 * temp dir, tokens made with `softhsm2-util --init-token --free`, AES-256
 * keys made by the token's owner with `pkcs11-tool --keygen` (Debian
 * `softhsm2` and `opensc`; .ci/run installs both). `softHsmUnavailable()`
 * says why SoftHSM2 cannot run here; tests skip for that reason only outside
 * CI (under CI=true they run, and fail if it is missing).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const SO_PIN = '87654321';

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Why SoftHSM2 cannot run on this machine, or undefined when it can. */
export function softHsmUnavailable(): string | undefined {
  if (!existsSync(SOFTHSM_MODULE)) return `${SOFTHSM_MODULE} is missing (apt-get install softhsm2)`;
  if (!onPath('softhsm2-util')) return 'softhsm2-util is not on PATH (apt-get install softhsm2)';
  if (!onPath('pkcs11-tool')) return 'pkcs11-tool is not on PATH (apt-get install opensc)';
  return undefined;
}

export class SoftHsm {
  readonly dir: string;
  readonly conf: string;
  private readonly previousConf: string | undefined;

  /** A fresh token directory; sets process.env.SOFTHSM2_CONF (read by the module at C_Initialize). */
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'vecvault-softhsm-'));
    mkdirSync(join(this.dir, 'tokens'), { mode: 0o700 });
    this.conf = join(this.dir, 'softhsm2.conf');
    writeFileSync(this.conf, `directories.tokendir = ${join(this.dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    this.previousConf = process.env.SOFTHSM2_CONF;
    process.env.SOFTHSM2_CONF = this.conf;
  }

  private run(tool: string, args: string[]): string {
    return execFileSync(tool, args, { env: { ...process.env, SOFTHSM2_CONF: this.conf }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  initToken(label: string, pin: string): void {
    this.run('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', SO_PIN, '--pin', pin]);
  }

  /** An AES-256 key made on the token as its owner would: sensitive, never extractable (unless `extractable`). */
  generateAesKey(tokenLabel: string, pin: string, keyLabel: string, opts: { extractable?: boolean } = {}): void {
    const flags = opts.extractable === true ? ['--extractable'] : ['--sensitive'];
    this.pkcs11Tool(tokenLabel, pin, '--keygen', '--key-type', 'AES:32', '--label', keyLabel, ...flags);
  }

  deleteKey(tokenLabel: string, pin: string, keyLabel: string): void {
    this.pkcs11Tool(tokenLabel, pin, '--delete-object', '--type', 'secrkey', '--label', keyLabel);
  }

  /** pkcs11-tool logged in to one token of this SoftHSM2. */
  private pkcs11Tool(tokenLabel: string, pin: string, ...args: string[]): string {
    return this.run('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', tokenLabel, '--login', '--pin', pin, ...args]);
  }

  changePin(tokenLabel: string, oldPin: string, newPin: string): void {
    this.pkcs11Tool(tokenLabel, oldPin, '--change-pin', '--new-pin', newPin);
  }

  deleteToken(tokenLabel: string): void {
    this.run('softhsm2-util', ['--delete-token', '--token', tokenLabel]);
  }

  /** What `pkcs11-tool --read-object` says when asked for the key's value (it must fail). */
  readKeyValue(tokenLabel: string, pin: string, keyLabel: string): { ok: boolean; output: string } {
    const result = spawnSync(
      'pkcs11-tool',
      ['--module', SOFTHSM_MODULE, '--token-label', tokenLabel, '--login', '--pin', pin, '--read-object', '--type', 'secrkey', '--label', keyLabel],
      { env: { ...process.env, SOFTHSM2_CONF: this.conf }, encoding: 'utf8' },
    );
    return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
  }

  cleanup(): void {
    if (this.previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = this.previousConf;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
