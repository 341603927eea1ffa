/** busØ's contract against NATS JetStream: a real nats-server on 127.0.0.1, one stream prefix per case. */
import { NatsBus } from '../../../core/bus/nats/index.ts';
import { natsServer } from '../../helpers/nats.ts';
import { busCases } from './bus.case.ts';

const server = await natsServer();
let n = 0;

busCases('NATS JetStream', async () => {
  const prefix = `t${++n}`;
  return { open: (limits) => NatsBus.open({ servers: server.url, prefix, limits }) };
});
