import { defineCapability } from 'os0/sdk';

export default defineCapability(async (_input: unknown, ctx) => ctx.nodes.list());
