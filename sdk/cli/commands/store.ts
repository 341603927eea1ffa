/** os0 trust, install, upgrade, uninstall, apps: the instance's app store. */
import * as readline from 'node:readline/promises';
import type { Resource } from '../../../core/resource.ts';
import { keyIdOf, readPublicKey } from '../../../registry/package/keys.ts';
import type { AppStatus, Done, Plan, PlannedApp, Uninstalled } from '../../../store/index.ts';
import { Client, CliError, type ClientOptions } from '../client.ts';
import { format, print } from '../output.ts';

interface Common extends ClientOptions {
  output?: string;
}

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** `name` or `name@range`. */
export function parseTarget(target: string): { app: string; range: string } {
  const at = target.indexOf('@');
  const app = at === -1 ? target : target.slice(0, at);
  const range = at === -1 ? '*' : target.slice(at + 1);
  if (!APP_NAME.test(app)) throw new CliError(`"${target}" is not NAME or NAME@RANGE (e.g. hello, hello@^1.2.0)`, 2);
  if (range === '') throw new CliError(`"${target}": a range must follow '@' (e.g. hello@^1.2.0)`, 2);
  return { app, range };
}

const progress = (m: string): void => {
  if (process.stderr.isTTY) process.stderr.write(`${m}\n`);
};

// ---- trust ----

export async function trustAdd(file: string, o: Common & { root?: boolean; description?: string }): Promise<void> {
  const f = format(o.output);
  let key: Uint8Array;
  try {
    key = readPublicKey(file);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const keyId = keyIdOf(key);
  const kind = o.root ? 'root' : 'publisher';
  const data: Record<string, unknown> = { publicKey: Buffer.from(key).toString('base64'), kind };
  if (o.description) data.description = o.description;
  const res = await new Client(o).json<{ resources: Resource[] }>('POST', '/v1/commands', { op: 'apply', resource: { type: 'trusted-key', name: keyId, data } });
  if (f === 'table') process.stdout.write(`trusted ${kind} key ${keyId}\n`);
  else print(f, res.resources[0], () => []);
}

export async function trustLs(o: Common): Promise<void> {
  const f = format(o.output);
  const list = await new Client(o).json<Resource[]>('GET', '/v1/resources?type=trusted-key');
  print(f, list, () => [['KEY', 'KIND', 'DESCRIPTION'], ...list.map((r) => { const d = r.data as { kind: string; description?: string }; return [r.name, d.kind, d.description ?? '']; })]);
}

export async function trustRm(keyId: string, o: Common): Promise<void> {
  const f = format(o.output);
  const res = await new Client(o).json<{ index: number }>('POST', '/v1/commands', { op: 'delete', resource: { type: 'trusted-key', name: keyId } });
  if (f === 'table') process.stdout.write(`no longer trusting ${keyId}\n`);
  else print(f, { keyId, index: res.index }, () => []);
}

// ---- install, upgrade ----

function showPlan(plan: Plan): void {
  const out = process.stderr;
  for (const a of plan.apps) {
    out.write(`${a.action === 'upgrade' ? `upgrade ${a.name} ${a.from} → ${a.version}` : `install ${a.name}@${a.version}`}  (signed by ${a.keyId})\n`);
    out.write(`  ${permissionsText(a)}\n`);
  }
  for (const n of plan.notices) out.write(`notice: ${n}\n`);
}

function permissionsText(a: PlannedApp): string {
  const grants = a.permissions.resources;
  const secrets = (a.permissions.secrets ?? []).map((s) => `${s.namespace ? s.namespace + '/' : ''}${s.name}`);
  const reads = secrets.length ? `; reads the secret${secrets.length === 1 ? '' : 's'} ${secrets.join(', ')}` : '';
  if (grants.length === 0) return `asks for no permissions on resources${reads}`;
  return 'may ' + grants.map((g) => `${g.verbs.join('/')} ${g.types.join(', ')}${g.namespaces ? ` in ${g.namespaces.join(', ')}` : ''}`).join('; ') + reads;
}

async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw new CliError('confirmation needed: review the permissions above and pass --yes to go ahead', 2);
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== 'y' && answer !== 'yes') throw new CliError('cancelled; nothing was installed');
  } finally {
    rl.close();
  }
}

async function planAndRun(action: 'install' | 'upgrade', target: string, o: Common & { yes?: boolean; allowDowngrade?: boolean; registry?: string }): Promise<void> {
  const f = format(o.output);
  const { app, range } = parseTarget(target);
  const client = new Client(o);
  progress(`resolving ${app}@${range} and checking signatures…`);
  let plan: Plan;
  try {
    plan = await client.json<Plan>('POST', '/v1/store/plan', { app, range, action, allowDowngrade: o.allowDowngrade === true, registry: o.registry });
  } catch (e) {
    // Already at the newest matching version: nothing to do is a success.
    if (action === 'upgrade' && e instanceof CliError && e.status === 409 && /nothing to upgrade$/.test(e.message)) {
      if (f === 'table') process.stdout.write(`${e.message}\n`);
      else print(f, { apps: [], message: e.message }, () => []);
      return;
    }
    throw e;
  }
  showPlan(plan);
  const n = plan.apps.length;
  await confirm(`${action === 'install' ? 'Install' : 'Upgrade'} ${n === 1 ? 'this app' : `these ${n} apps`} with these permissions?`, o.yes);
  progress(`${action === 'install' ? 'installing' : 'upgrading'}…`);
  const expect = Object.fromEntries(plan.apps.map((a) => [a.name, a.digest]));
  const done = await client.json<Done>('POST', `/v1/store/${action}`, { app, range, expect, allowDowngrade: o.allowDowngrade === true, registry: o.registry });
  if (f !== 'table') return print(f, done, () => []);
  for (const a of done.apps) process.stdout.write(`${a.action === 'upgrade' ? `upgraded ${a.name} ${a.from} → ${a.version}` : `installed ${a.name}@${a.version}`}\n`);
  for (const l of done.logs ?? []) process.stderr.write(`migration: ${l}\n`);
}

export function install(target: string, o: Common & { yes?: boolean; allowDowngrade?: boolean; registry?: string }): Promise<void> {
  return planAndRun('install', target, o);
}

export function upgrade(target: string, o: Common & { yes?: boolean; allowDowngrade?: boolean; registry?: string }): Promise<void> {
  return planAndRun('upgrade', target, o);
}

// ---- uninstall, apps ----

export async function uninstall(app: string, o: Common & { force?: boolean }): Promise<void> {
  const f = format(o.output);
  if (!APP_NAME.test(app)) throw new CliError(`"${app}" is not an app name`, 2);
  const res = await new Client(o).json<Uninstalled>('DELETE', `/v1/store/apps/${app}${o.force ? '?force=true' : ''}`);
  if (f !== 'table') return print(f, res, () => []);
  process.stdout.write(`uninstalled ${app} (${res.removed.length} resources removed)\n`);
  if (res.broken.length > 0) process.stderr.write(`warning: ${res.broken.join(', ')} depended on ${app} and will not work until it is installed again\n`);
}

export async function apps(o: Common): Promise<void> {
  const f = format(o.output);
  const list = await new Client(o).json<AppStatus[]>('GET', '/v1/store/apps');
  print(f, list, () => [['NAME', 'VERSION', 'KEY', 'CAPABILITIES', 'STATUS'], ...list.map((a) => [a.name, a.version, a.keyId, a.capabilities.join(',') || '-', a.status])]);
}


