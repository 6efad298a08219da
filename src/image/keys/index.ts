// Public API of the key store: signing and verification keys (PEM and OpenPGP) and the
// node's trusted keys in $WARREN_HOME/keys.
export { loadKeyFile, parseKey, pemKeyFromText, pgpKeyFromText, pemFingerprint, dsseKeyId, fingerprintFromKeyId, fingerprintMatches } from './keys.js';
export type { KeyType, LoadedKey, PemKey, PgpKey } from './keys.js';
export { KeyStore, defaultKeyDir, resolveKey } from './store.js';
export type { StoredKey } from './store.js';
