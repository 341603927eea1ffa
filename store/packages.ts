/**
 * The packages of installed apps, kept by digest in DIR/packages/<digest>.tgz: written (temp
 * file, fsync, rename) before the install's batch is submitted, so that every app resource in
 * the tree names a package that is on disk. A package left by an install that then failed is
 * harmless (content-addressed) and is removed by the next start's sweep.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const DIGEST = /^[0-9a-f]{64}$/;

export class PackageFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    fs.mkdirSync(dir, { recursive: true });
  }

  file(digest: string): string {
    if (!DIGEST.test(digest)) throw new Error(`not a package digest: ${digest}`);
    return path.join(this.dir, `${digest}.tgz`);
  }

  has(digest: string): boolean {
    return fs.existsSync(this.file(digest));
  }

  write(digest: string, tgz: Buffer): void {
    const file = this.file(digest);
    if (fs.existsSync(file)) return;
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, tgz);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    const dfd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }

  read(digest: string): Buffer {
    return fs.readFileSync(this.file(digest));
  }

  /** Removes every package (and stray temp file) whose digest is not in `keep`. */
  sweep(keep: Set<string>): number {
    let removed = 0;
    for (const f of fs.readdirSync(this.dir)) {
      const m = /^([0-9a-f]{64})\.tgz$/.exec(f);
      if (m && keep.has(m[1])) continue;
      fs.rmSync(path.join(this.dir, f), { force: true });
      removed++;
    }
    return removed;
  }
}
