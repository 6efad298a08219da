// Helper process for the cross-process pull test: pulls argv[2] into the cache argv[3]
// and prints the rootfs path. (Not a test file itself.)
import { prepareImage } from '../../../src/image/index.js';

const [uri, cacheDir] = process.argv.slice(2);
const img = await prepareImage(uri!, { cacheDir: cacheDir!, platform: { os: 'linux', architecture: 'amd64' } });
process.stdout.write(img.path + '\n');
