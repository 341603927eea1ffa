import { defineCapability, type NodeCommand } from 'os0/sdk';

export default defineCapability(async (input: { machine: string; command: NodeCommand }, ctx) => ctx.nodes.send(input.machine, input.command));
