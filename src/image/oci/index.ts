// Public API of the OCI part of the image subsystem (registry client, pull, push).
export { parseImageRef, parseRegistryRef, registryBaseUrl, isDigest } from './ref.js';
export type { ImageRef, RegistryImageRef, LocalImageRef } from './ref.js';
export { MT, hostPlatform, formatPlatform, parsePlatform, selectPlatform, imageConfigFrom, layerCompression } from './types.js';
export type { Platform, Descriptor, ImageIndex, ImageManifest, ImageConfig, OciImageConfigFile } from './types.js';
export { parseWwwAuthenticate, credentialsFile, loadCredentials, saveCredentials, removeCredentials } from './auth.js';
export type { RegistryAuth, AuthChallenge } from './auth.js';
export { RegistryClient } from './client.js';
export type { RegistryClientOptions, FetchedManifest } from './client.js';
export { pullImage, fetchImageBlobs, hasSifMagic } from './pull.js';
export type { PullOptions, PullProgress, PullStats, PulledImage } from './pull.js';
export { pushImage, pushIndex, pushSif, pushLocalImage, layerFromDirectory, buildLayer, sha256Digest } from './push.js';
export type { LayerEntry, BuiltLayer, PushLayer, PushImageSpec, PushOptions, PushedManifest } from './push.js';
export { RootfsWriter } from './unpack.js';
