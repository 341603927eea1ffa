/** The scheduler's placement as a pure function: bin-packing, spread, constraints, reasons, quotas and reservations. */
import { describe, expect, it } from 'vitest';
import { Fleet, type MachineView, type PlacementRequest } from '../../../core/kernel/placement.ts';

const machine = (name: string, o: Partial<MachineView> = {}): MachineView => ({ name, cpu: 4, memoryMb: 4096, ports: [20000, 20009], labels: {}, up: true, cordoned: false, ...o });
let n = 0;
const req = (o: Partial<PlacementRequest> = {}): PlacementRequest => ({ key: `demo/t${n++}`, namespace: 'demo', group: 'demo/web', cpu: 1, memoryMb: 512, ports: 1, ...o });
const placeAll = (f: Fleet, reqs: PlacementRequest[]): (string | null)[] =>
  reqs.map((r) => {
    const p = f.place(r);
    if (p.machine) f.commit(r, p.machine);
    return p.machine;
  });

describe('placement', () => {
  it('bin-packs: fills the fuller machine before the emptier one (across services)', () => {
    const f = new Fleet();
    f.setMachine(machine('a'));
    f.setMachine(machine('b'));
    f.commit(req({ group: 'demo/db', cpu: 2, memoryMb: 2048 }), 'b');
    const got = placeAll(f, [req({ group: 'demo/x' }), req({ group: 'demo/y' })]);
    expect(got).toEqual(['b', 'b']);
    expect(f.usage('b')).toEqual({ cpu: 4, memoryMb: 3072, ports: 3 });
    // b is full on cpu now: the next goes to a.
    expect(placeAll(f, [req({ group: 'demo/z' })])).toEqual(['a']);
  });

  it("spreads one service's replicas across machines before doubling up", () => {
    const f = new Fleet();
    for (const m of ['a', 'b', 'c']) f.setMachine(machine(m));
    const got = placeAll(f, [req(), req(), req(), req()]);
    expect(new Set(got.slice(0, 3))).toEqual(new Set(['a', 'b', 'c']));
    expect(got[3]).not.toBeNull();
  });

  it('skips down and cordoned machines and those without the labels asked for, and says so per constraint', () => {
    const f = new Fleet();
    f.setMachine(machine('down1', { up: false }));
    f.setMachine(machine('cord1', { cordoned: true }));
    f.setMachine(machine('plain1'));
    f.setMachine(machine('plain2'));
    f.setMachine(machine('gpu1', { labels: { gpu: 'yes' }, cpu: 1 }));
    const r = req({ labels: { gpu: 'yes' }, cpu: 2 });
    const p = f.place(r);
    expect(p.machine).toBeNull();
    const reason = (p as { reason: string }).reason;
    expect(reason).toContain('0 of 5 machines fit');
    expect(reason).toContain('1 down');
    expect(reason).toContain('1 cordoned');
    expect(reason).toContain('2 without label gpu=yes');
    expect(reason).toContain('cpu exhausted on 1 (gpu1 (1 free); 2 wanted)');
    f.setMachine(machine('gpu1', { labels: { gpu: 'yes' }, cpu: 8 }));
    expect(f.place(r)).toEqual({ machine: 'gpu1' });
  });

  it('names memory and ports when they run out, and places once capacity appears', () => {
    const f = new Fleet();
    f.setMachine(machine('small', { memoryMb: 256 }));
    f.setMachine(machine('fewports', { ports: [30000, 30000] }));
    f.commit(req({ group: 'demo/other', cpu: 0, memoryMb: 0 }), 'fewports');
    const p = f.place(req());
    expect(p.machine).toBeNull();
    expect((p as { reason: string }).reason).toMatch(/memory exhausted on 1 \(small \(256 MB free\); 512 MB wanted\)/);
    expect((p as { reason: string }).reason).toMatch(/ports exhausted on 1 \(fewports \(0 free\); 1 wanted\)/);
    f.setMachine(machine('big', { cpu: 64, memoryMb: 65536 }));
    expect(f.place(req()).machine).toBe('big');
  });

  it('releases what a gone task held', () => {
    const f = new Fleet();
    f.setMachine(machine('a', { cpu: 1 }));
    const r1 = req();
    expect(placeAll(f, [r1])).toEqual(['a']);
    expect(f.place(req()).machine).toBeNull();
    f.release(r1.key);
    expect(f.place(req()).machine).toBe('a');
  });

  it('holds a namespace quota (for the namespace and everything below it)', () => {
    const f = new Fleet();
    f.setMachine(machine('a', { cpu: 16, memoryMb: 65536 }));
    f.setQuota('acme', { cpu: 2 });
    expect(placeAll(f, [req({ namespace: 'acme/prod' }), req({ namespace: 'acme/dev' })])).toEqual(['a', 'a']);
    const p = f.place(req({ namespace: 'acme/prod' }));
    expect(p).toEqual({ machine: null, reason: 'quota: namespace acme allows 2 cpu; 2 are placed and 1 more are wanted' });
    expect(f.place(req({ namespace: 'other' })).machine).toBe('a');
  });

  it("keeps another namespace's unused reservation free, and lets the reserving namespace use it", () => {
    const f = new Fleet();
    f.setMachine(machine('a', { cpu: 4 }));
    f.setReservation('acme/prod', { cpu: 3, memoryMb: 0 });
    const p = f.place(req({ namespace: 'demo', cpu: 2 }));
    expect(p.machine).toBeNull();
    expect((p as { reason: string }).reason).toMatch(/^reservations: 3 cpu .* reserved for acme\/prod/);
    expect(f.place(req({ namespace: 'demo', cpu: 1 })).machine).toBe('a');
    expect(placeAll(f, [req({ namespace: 'acme/prod', cpu: 3 })])).toEqual(['a']);
    // Used by its owner, the reservation holds nothing more back.
    expect(f.place(req({ namespace: 'demo', cpu: 1 })).machine).toBe('a');
  });

  it('says there are no machines when there are none', () => {
    expect(new Fleet().place(req())).toEqual({ machine: null, reason: 'no machines: join one with os0 node join' });
  });
});
