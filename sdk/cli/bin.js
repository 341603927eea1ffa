#!/usr/bin/env node
// The `os0` command. It always runs on the Node.js 22 that `npm ci` installed (the `node`
// dependency), whatever `node` started it: an older or newer runtime re-executes it there.
// The re-executed child never outlives this wrapper: signals are forwarded, and an IPC channel
// tells it the moment the wrapper is gone, however it went (even kill -9; see lifeline.ts).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PINNED_MAJOR = 22;

if (Number(process.versions.node.split('.')[0]) !== PINNED_MAJOR) {
  let pinned;
  try {
    pinned = join(dirname(createRequire(import.meta.url).resolve('node/package.json')), 'bin', 'node');
  } catch {
    console.error(`os0: needs Node.js ${PINNED_MAJOR} (running ${process.version}) and the pinned runtime is not installed; run 'npm ci' in the os0 folder`);
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
  child.channel?.unref();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    console.error(`os0: cannot start the pinned Node.js at ${pinned}: ${e.message}; run 'npm ci'`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
  if (process.channel) {
    // Started by the wrapper above: the channel is only a lifeline, never a reason to stay up.
    process.channel.unref();
    // A command that does not watch the lifeline itself (os0 up does) ends with the wrapper.
    process.once('disconnect', () => {
      if (process.listenerCount('disconnect') === 0) process.exit(1);
    });
  }
  await import('./main.ts');
}
