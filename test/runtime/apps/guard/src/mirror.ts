interface Event {
  action: string;
  new: { name: string; namespace: string; data: unknown } | null;
}

export default async (ev: Event, ctx: { commands: { apply(doc: unknown): Promise<unknown> } }) => {
  if (ev.action !== 'create' || !ev.new || ev.new.name.endsWith('-seen')) return;
  await ctx.commands.apply({ type: 'configuration', namespace: ev.new.namespace, name: `${ev.new.name}-seen`, data: { of: ev.new.name } });
};
