/**
 * What ctx.nodes reaches: an interface the Invoker is given (InvokerOptions.nodes), so the
 * runtime needs no bus of its own; the composition root wires it to busØ with `busNodes`.
 */
import { commandStream, type Bus } from '../../core/bus/index.ts';

/** A command for a node's device: `type` is `DEVICE.ACTION` (the agent's devices read it). */
export interface NodeCommand {
  type: string;
  [field: string]: unknown;
}

export interface NodesPort {
  /** Publishes the command to the machine's command stream; resolves once the bus stored it. */
  send(machine: string, command: NodeCommand): Promise<{ stream: string; seq: number }>;
  /** The machines' names. */
  list(): string[] | Promise<string[]>;
}

/** ctx.nodes on busØ: commands go to stream `cmd.MACHINE`; `machines` names the fleet's machines. */
export function busNodes(bus: Bus, machines: () => string[] | Promise<string[]>): NodesPort {
  return {
    async send(machine, command) {
      const p = await bus.publish(commandStream(machine), command);
      return { stream: p.stream, seq: p.seq };
    },
    list: machines,
  };
}
