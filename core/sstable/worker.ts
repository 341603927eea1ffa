/** The compaction worker thread: runs one job at a time off the main thread. */
import { parentPort } from 'node:worker_threads';
import { runJob, type Job } from './jobs.ts';

parentPort!.on('message', (msg: { id: number; job: Job }) => {
  try {
    parentPort!.postMessage({ id: msg.id, ok: true, result: runJob(msg.job) });
  } catch (e) {
    const err = e as Error & { code?: string };
    parentPort!.postMessage({ id: msg.id, ok: false, error: { message: err.message, code: err.code } });
  }
});
