// docs/api/openapi.json is generated from the routes' JSON schemas: it must be what the
// code generates now (and the same on every machine and run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openApiText, OPENAPI_COMMAND } from '../../src/server/http/openapi.js';
import { repoRoot } from '../helpers.js';

test('docs/api/openapi.json is up to date with the route schemas', { timeout: 60_000 }, async () => {
  const generated = await openApiText();
  assert.equal(generated, await openApiText(), 'two generations differ: something volatile is in the document');
  const file = join(repoRoot, 'docs', 'api', 'openapi.json');
  let kept = '';
  try {
    kept = readFileSync(file, 'utf8');
  } catch {
    // missing: the message below says how to make it
  }
  assert.ok(kept === generated, `docs/api/openapi.json is stale (or missing): regenerate it with\n  ${OPENAPI_COMMAND}\nand commit it`);
});

test('the document describes every route of the client API, each with an operationId, and needs a token but for health', { timeout: 60_000 }, async () => {
  const doc = JSON.parse(await openApiText()) as { openapi: string; paths: Record<string, Record<string, { operationId?: string; security?: unknown[]; responses: Record<string, unknown> }>> };
  assert.equal(doc.openapi, '3.1.0');
  const ops = Object.entries(doc.paths).flatMap(([p, ms]) => Object.entries(ms).map(([m, op]) => ({ route: `${m.toUpperCase()} ${p}`, ...op })));
  const ids = ops.map((o) => o.operationId).sort();
  const expected = [
    'addUser', 'audit', 'caStatus', 'cancel', 'createJoinToken', 'deleteNode', 'drain', 'get', 'health', 'list', 'logs', 'nodeImageBuild', 'nodeImages', 'nodes', 'portForward', 'prune', 'removeNodeImages', 'removeUser', 'resume',
    'retireCa', 'revokeNode', 'revokeToken', 'rotateCa', 'serverStatus', 'stream', 'submit', 'tokens', 'undrain', 'users', 'whoami',
    // the provisioning inventory
    'addInventoryNodes', 'addProfile', 'deleteInventoryNodes', 'deleteProfile', 'inventoryNodes', 'profiles', 'setInventoryNodes', 'setProfile',
  ].sort();
  assert.deepEqual(ids, expected);
  for (const o of ops) {
    if (o.operationId === 'health') assert.deepEqual(o.security, [], 'health needs no token');
    else assert.ok(o.responses['4XX'], `${o.route} documents its errors`);
  }
});
