/** busØ's contract against the embedded bus, on real files with fsync. */
import * as path from 'node:path';
import { EmbeddedBus } from '../../../core/bus/embedded/index.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { busCases } from './bus.case.ts';

const root = tempDir('bus-');
let n = 0;

busCases('embedded', async () => {
  const dir = path.join(root, String(++n));
  return { open: (limits) => EmbeddedBus.open({ dir, limits }) };
});
