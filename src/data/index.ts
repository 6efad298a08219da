// Data movement: ingress into volumes (through a content-addressed download cache) and egress out of them.
export * from './types.js';
export { ingress } from './ingress.js';
export { egress } from './egress.js';
export { DataCache } from './cache.js';
export { defaultSecretResolver, secretExists } from './secrets.js';
export { s3Settings } from './s3.js';
