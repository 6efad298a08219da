// Public API of the OCI part of the image subsystem (registry client, pull, push).
export { parseImageRef, parseRegistryRef, registryBaseUrl, isInsecureRegistry, parseRegistryLocation, normalizeRegistryHost, isDigest } from './ref.js';
export type { ImageRef, RegistryImageRef, LocalImageRef, RegistryLocation } from './ref.js';
export { MIRRORS_ENV, mirrorsFile, parseMirrorsEnv, parseMirrorsFile, loadRegistriesConfig, findMirror, pullSource } from './mirrors.js';
export type { MirrorRule, RegistriesConfig, PullSource } from './mirrors.js';
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
