/**
 * The replay property: for seeded random command streams, the state rebuilt from disk (sstables +
 * WAL) equals the live state, which equals a plain model of the same commands.
 */
import { describe, expect, it } from 'vitest';
import { Core, type Command, type Resource } from '../../core/index.ts';
import { prng, tempDir } from '../helpers/tmp.ts';

type Model = Map<string, { data: unknown; tags: Record<string, string>; revision: number }>;
const keyOf = (r: { namespace?: string; type: string; name: string }) => `${r.namespace ?? ''}|${r.type}|${r.name}`;

function snapshot(core: Core): string[] {
  return core
    .query({})
    .map((r: Resource) => JSON.stringify([keyOf(r), r.id, r.revision, r.created, r.updated, r.tags, r.data]))
    .sort();
}

function matchesModel(core: Core, model: Model): void {
  const live = core.query({});
  expect(live.length).toBe(model.size);
  for (const r of live) {
    const m = model.get(keyOf(r));
    expect(m, keyOf(r)).toBeDefined();
    expect(r.data).toEqual(m!.data);
    expect(r.tags).toEqual(m!.tags);
    expect(r.revision).toBe(m!.revision);
  }
  // The tag index agrees with a scan.
  for (const v of ['a', 'b', 'c']) {
    expect(core.query({ tags: { t: v } }).length).toBe([...model.values()].filter((m) => m.tags.t === v).length);
  }
}

describe('replay property', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: rebuilt state equals live state equals the model`, async () => {
      const rnd = prng(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
      const dir = tempDir();
      const opts = { dir, segmentBytes: 4096 + Math.floor(rnd() * 16384), deltasBeforeCompaction: 2 + Math.floor(rnd() * 3) };
      let core = await Core.open(opts);
      const model: Model = new Map();
      const namespaces = ['a', 'a/b', 'a/b/c', 'd'];
      const randomCommand = (): Command => {
        const ns = pick(namespaces);
        const name = `r${Math.floor(rnd() * 40)}`;
        const op = pick(['create', 'update', 'apply', 'apply', 'delete'] as const);
        const tags: Record<string, string> = rnd() < 0.7 ? { t: pick(['a', 'b', 'c']) } : {};
        return { op, resource: { type: pick(['configuration', 'secret']), namespace: ns, name, tags, data: { v: Math.floor(rnd() * 1000) } } };
      };
      for (let step = 0; step < 600; step++) {
        const batch = rnd() < 0.2 ? Array.from({ length: 1 + Math.floor(rnd() * 4) }, randomCommand) : [randomCommand()];
        // Predict the outcome on a copy of the model; a batch applies whole or not at all.
        const next: Model = new Map(model);
        let ok = true;
        for (const c of batch) {
          const k = keyOf(c.resource);
          const exists = next.has(k);
          if ((c.op === 'create' && exists) || ((c.op === 'update' || c.op === 'delete') && !exists)) ok = false;
          else if (c.op === 'delete') next.delete(k);
          else next.set(k, { data: c.resource.data, tags: c.resource.tags ?? {}, revision: -1 });
        }
        try {
          const res = await core.submit(batch.length === 1 ? batch[0] : { batch });
          expect(ok).toBe(true);
          for (const [k, v] of next) if (v.revision === -1) next.set(k, { ...v, revision: res.index });
          model.clear();
          for (const [k, v] of next) model.set(k, v);
        } catch (e) {
          expect(ok, String(e)).toBe(false);
        }
        if (rnd() < 0.01) await core.checkpoint();
        if (rnd() < 0.02) {
          const live = snapshot(core);
          await core.close();
          core = await Core.open(opts);
          expect(snapshot(core)).toEqual(live);
        }
      }
      matchesModel(core, model);
      const live = snapshot(core);
      await core.close();
      core = await Core.open(opts);
      expect(snapshot(core)).toEqual(live);
      matchesModel(core, model);
      await core.close();
    });
  }
});
