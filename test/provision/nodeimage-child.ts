// A node image build in a process of its own, for the crash test (nodeimage.test.ts kills it).
//   node nodeimage-child.js SOURCE DATA_DIR
import { buildNodeImage } from '../../src/provision/index.js';

const [source, dataDir] = process.argv.slice(2);
const img = await buildNodeImage({ source: source!, dataDir: dataDir! });
process.stdout.write(JSON.stringify(img) + '\n');
