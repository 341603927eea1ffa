/** os0 keygen and os0 pack: publisher keys, and an app folder packed into NAME-VERSION.tgz. */
import { CliError } from '../client.ts';
import { readSecretKey, writeKeyPair } from '../../../registry/package/keys.ts';
import { pack as packApp } from '../../../registry/package/pack.ts';

export async function keygen(opts: { out?: string }): Promise<void> {
  const { gitWorkTree, os0Home } = await import('../home.ts');
  const dir = opts.out ?? os0Home();
  // A secret key never lands in a repository by default: only an explicit --out puts it there.
  const repo = opts.out === undefined ? gitWorkTree(dir) : undefined;
  if (repo) throw new CliError(`${dir} is inside the git work tree ${repo}; a secret key does not belong in a repository: set OS0_HOME to a folder outside it, or pass --out DIR to write there anyway`);
  let r;
  try {
    r = writeKeyPair(dir);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  process.stderr.write(`wrote ${r.keyFile} (secret: keep it, mode 0600) and ${r.pubFile}\n`);
  process.stdout.write(`${r.keyId}\n`);
}

export async function pack(dir: string | undefined, opts: { out?: string; key?: string; output?: string }): Promise<void> {
  const output = opts.output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new CliError(`-o must be table or json (got ${output})`, 2);
  let key: Uint8Array | undefined;
  if (opts.key !== undefined) {
    try {
      key = readSecretKey(opts.key);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  const tty = process.stderr.isTTY === true;
  let r;
  try {
    r = await packApp(dir ?? '.', { out: opts.out, key, onProgress: tty ? (m) => process.stderr.write(`${m}\n`) : undefined });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (output === 'json') {
    process.stdout.write(JSON.stringify({ file: r.file, digest: r.digest, size: r.size, keyId: r.keyId }, null, 2) + '\n');
  } else {
    if (tty) process.stderr.write(`${r.files.length} files, ${r.size} bytes, digest ${r.digest}, ${r.keyId ? `signed by ${r.keyId}` : 'unsigned (publish signs it)'}\n`);
    process.stdout.write(`${r.file}\n`);
  }
}
