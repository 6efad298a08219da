// @peculiar/x509 depends on tsyringe, which refuses to load without a Reflect metadata API.
// Imported before @peculiar/x509 (src/mesh/crypto.ts).
import 'reflect-metadata';
export {};
