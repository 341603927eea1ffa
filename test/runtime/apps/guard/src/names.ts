import { defineCapability } from 'os0/sdk';

interface Input {
  commands: { op: string; resource: { name: string } }[];
  actor: string;
}

export default defineCapability(async (input: Input) => {
  const bad = input.commands.find((c) => c.resource.name.startsWith('forbidden-'));
  return bad ? { allow: false, reason: `${input.actor} may not name a configuration ${bad.resource.name}` } : { allow: true };
});
