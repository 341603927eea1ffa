import { defineDriver } from 'os0/sdk';

interface Record {
  address: string;
}
interface Seen {
  address: string;
  machines: string[];
}

export default defineDriver<Record, Seen>({
  types: ['record'],
  async reconcile({ desired, observed }, ctx) {
    const machines = await ctx.nodes.list();
    if (desired === null) {
      for (const m of observed?.machines ?? []) await ctx.nodes.send(m, { type: 'dns.remove', name: 'gone' });
      return null;
    }
    const address = desired.data!.address;
    if (observed?.address === address) return { observed, cost: { perHour: 0.01 } };
    for (const m of machines) await ctx.nodes.send(m, { type: 'dns.set', name: desired.name, address });
    ctx.log('set', desired.name, address);
    return { observed: { address, machines }, cost: { perHour: 0.01 } };
  },
});
