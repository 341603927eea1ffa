import { defineCapability } from 'os0/sdk';

/** What `os0 upgrade` hands an update program. */
interface UpdateInput {
  from: { version: string; manifest: unknown };
  to: { version: string; manifest: unknown };
}

/** Set this configuration (any data) to make the migration fail on purpose, after it has staged its writes. */
const FAIL_FLAG = 'counter-fail-migration';

/**
 * 1.x → 2.x: every `configuration` named `counter` this upgrade may list, {count: N}, becomes
 * {value: N, bumps: 0}. Counters already in the 2.x shape are left alone, so running it twice
 * changes nothing. Its writes are staged and committed with the switch to 2.0.0, or not at all.
 */
export default defineCapability(async (input: UpdateInput, ctx) => {
  const to = input?.to?.version;
  const major = typeof to === 'string' ? Number(to.split('.')[0]) : NaN;
  if (major !== 2) throw new Error(`this migration upgrades counter to 2.x, not to ${JSON.stringify(to)}`);
  const configurations = await ctx.resources.query({ type: 'configuration' });
  let migrated = 0;
  for (const r of configurations) {
    if (r.name !== 'counter') continue;
    const d = (r.data ?? {}) as { count?: unknown; value?: unknown };
    if (d.value !== undefined || typeof d.count !== 'number') continue;
    await ctx.commands.apply({ type: 'configuration', namespace: r.namespace, name: 'counter', ...(r.tags ? { tags: r.tags } : {}), data: { value: d.count, bumps: 0 } });
    ctx.log(`migrated ${r.namespace}/counter: count ${d.count} → value ${d.count}`);
    migrated++;
  }
  if (configurations.some((r) => r.name === FAIL_FLAG)) throw new Error(`migration refused: ${FAIL_FLAG} is set`);
  ctx.log(`migrated ${migrated} counter(s) from ${input.from?.version} to ${to}`);
  return { migrated };
});
