// Public API of the image cache (content-addressed, shared by all jobs of a node).
export { ImageCache, defaultImageCacheDir } from './store.js';
export type { CachedImage, ImageRecord, RefRecord, PruneOptions, PruneResult, RemoveResult } from './store.js';
export { TrustedSifStore } from './trusted.js';
export type { TrustedCopy } from './trusted.js';
