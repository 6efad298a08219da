// Key generation and PEM conversions over Node's WebCrypto. Every certificate operation of
// @peculiar/x509 goes through this one provider: no home-made crypto.
import './reflect.js'; // before @peculiar/x509: tsyringe needs a Reflect metadata API
import { webcrypto, X509Certificate as NodeX509, createPrivateKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';

export const subtle = webcrypto.subtle;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
x509.cryptoProvider.set(webcrypto as never);

/** ECDSA P-256 with SHA-256: the one algorithm Warren issues and signs with. */
export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A new P-256 key pair (extractable, so that it can be kept in a 0600 file). */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** The private key as PKCS#8 PEM (what Node's tls takes as `key`). */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY').trimEnd() + '\n';
}

/** A PKCS#8 PEM P-256 private key back to a key pair (public key derived from it). */
export async function keyPairFromPem(pem: string): Promise<CryptoKeyPair> {
  // Node parses the PEM (and refuses anything that is not a private key); WebCrypto imports it.
  const ko = createPrivateKey(pem);
  const pkcs8 = ko.export({ format: 'der', type: 'pkcs8' });
  const privateKey = await subtle.importKey('pkcs8', pkcs8, EC_KEY_ALGORITHM, true, ['sign']);
  const jwk = ko.export({ format: 'jwk' });
  const publicKey = await subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, EC_KEY_ALGORITHM, true, ['verify']);
  return { privateKey, publicKey };
}

/** A random positive serial number of 16 bytes (128 bits of entropy less the sign bit), hex. */
export function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, and never a leading zero byte
  return Buffer.from(b).toString('hex');
}

/** Split a PEM bundle into its certificates (Node's parser; garbage is an error). */
export function splitPemCertificates(pem: string): NodeX509[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new NodeX509(b));
}

export { x509 };
