/** Writing as `system`, in atomic batches of a bounded size. */
import { SYSTEM_ACTOR } from '../auth/permission.ts';
import type { Core } from '../core.ts';
import type { Command } from '../resource.ts';

const BATCH_MAX = 200;

export async function submitAll(core: Core, cmds: Command[]): Promise<void> {
  for (let i = 0; i < cmds.length; i += BATCH_MAX) {
    const batch = cmds.slice(i, i + BATCH_MAX);
    await core.submit(batch.length === 1 ? batch[0] : { batch }, { actor: SYSTEM_ACTOR });
  }
}

/** Whether two JSON values are equal (small documents). */
export const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
