// The provisioning inventory's routes (admins only), under /api/v1/provision: nodes and profiles
// (src/api InventoryClient), and their JSON schemas (src/provision/types.ts, manage.ts).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { InventoryClient, NodeChangeRequest, ProfileChangeRequest } from '../../api/index.js';
import { ERROR_RESPONSES, arrayOf, ref } from './schemas.js';

const str = { type: 'string' } as const;
const strs = { type: 'array', items: str } as const;
const ms = { type: ['number', 'null'], description: 'milliseconds since the epoch' } as const;
const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties)) => ({ type: 'object', additionalProperties: false, properties, required });

/** Node and profile names: src/provision checks them (PROVISION_BAD_NAME, with a hint). */
const name = { type: 'string', minLength: 1, maxLength: 255 } as const;

const netDevice = obj(
  {
    device: str,
    mac: str,
    ip: { ...str, description: 'ADDRESS/PREFIX' },
    gateway: str,
    dns: strs,
    mtu: { type: 'integer' },
    primary: { type: 'boolean' },
  },
  [],
);

const fieldProps = {
  image: { ...str, description: 'the source image of its node image (`warren image node-build IMAGE`)' },
  kernel: str,
  kernelArgs: strs,
  systemOverlays: strs,
  runtimeOverlays: strs,
  network: { type: 'object', additionalProperties: netDevice, description: 'interfaces by name' },
  tags: { type: 'object', additionalProperties: str, description: "the scheduler's labels of its agent" },
  comment: str,
  sshKeys: strs,
};

const changeProps = {
  image: { ...str, maxLength: 4096 },
  kernel: { ...str, maxLength: 4096 },
  kernelArgs: { type: 'array', maxItems: 256, items: { ...str, maxLength: 4096 } },
  systemOverlays: { type: 'array', maxItems: 64, items: str },
  runtimeOverlays: { type: 'array', maxItems: 64, items: str },
  tags: { type: 'object', maxProperties: 256, additionalProperties: { ...str, maxLength: 255 } },
  comment: { ...str, maxLength: 1000 },
  sshKeys: { type: 'array', maxItems: 256, items: { ...str, maxLength: 16384 } },
  netname: { ...str, maxLength: 32, description: 'the interface the network fields apply to (the key of network; default `default`)' },
  netdev: { ...str, maxLength: 15, description: 'its device name on the node (eth0)' },
  mac: { ...str, maxLength: 32, description: 'the MAC of the first node (counted up per node of a range)' },
  ip: { ...str, maxLength: 32, description: 'ADDRESS[/PREFIX] of the first node (counted up per node of a range)' },
  gateway: { ...str, maxLength: 32 },
  dns: { type: 'array', maxItems: 16, items: { ...str, maxLength: 32 } },
  mtu: { type: 'integer' },
  unset: { type: 'array', maxItems: 64, items: { ...str, maxLength: 200 }, description: 'fields to remove first: image, kernel, kernel-args, tags, tags.KEY, network.DEV, network.DEV.FIELD, ...' },
};

export const PROVISION_SCHEMAS = [
  {
    $id: 'InventoryNode',
    description: 'a node of the provisioning inventory (its own fields; `profiles` in order)',
    ...obj({ name: str, profiles: strs, createdAt: { type: 'number' }, updatedAt: { type: 'number' }, ...fieldProps }, ['name', 'profiles', 'createdAt', 'updatedAt']),
  },
  {
    $id: 'Profile',
    description: 'a provisioning profile: fields its nodes inherit',
    ...obj({ name: str, createdAt: { type: 'number' }, updatedAt: { type: 'number' }, ...fieldProps }, ['name', 'createdAt', 'updatedAt']),
  },
  {
    $id: 'InventoryNodeView',
    description: 'a node with its profiles applied (every value and where it came from) and what the boot service last saw of it',
    ...obj({
      node: ref('InventoryNode'),
      resolved: obj({
        name: str,
        profiles: strs,
        image: { type: ['string', 'null'] },
        kernel: { type: ['string', 'null'] },
        kernelArgs: strs,
        systemOverlays: strs,
        runtimeOverlays: strs,
        network: fieldProps.network,
        tags: fieldProps.tags,
        sshKeys: strs,
        comment: { type: ['string', 'null'] },
        primary: { anyOf: [{ type: 'null' }, netDevice] },
        origin: { type: 'object', additionalProperties: str, description: 'field path -> node, profile:NAME or default' },
      }),
      boot: {
        anyOf: [
          { type: 'null' },
          obj({ lastRequestAt: ms, lastRequest: { type: ['string', 'null'] }, from: { type: ['string', 'null'] }, bootedAt: ms, imageDigest: { type: ['string', 'null'] }, systemOverlayAt: ms, runtimeOverlayAt: ms }),
        ],
      },
    }),
  },
  {
    $id: 'NodeChange',
    description: 'nodes to add or change: a name or range (`n[001-128]`) and the fields (MAC and IP counted up from the first)',
    ...obj({ names: { ...str, minLength: 1, maxLength: 4096 }, profiles: { type: 'array', maxItems: 64, items: name }, ...changeProps }, ['names']),
  },
  {
    $id: 'ProfileChange',
    description: 'a profile to add or change (no MAC or IP: those are each node\'s)',
    ...obj({ name, ...changeProps }, ['name']),
  },
] as const satisfies readonly Record<string, unknown>[];

const profileParams = obj({ name });

/** Register the routes on the /api/v1 plugin; `client(req)` is the caller's (admins only: `config.admin`). */
export function provisionRoutes(r: FastifyInstance, client: (req: FastifyRequest) => InventoryClient): void {
  const admin = { admin: true };
  const tags = ['provision'];
  r.get('/provision/nodes', {
    config: admin,
    schema: {
      tags,
      operationId: 'inventoryNodes',
      summary: 'the inventory: nodes with their profiles applied (values and origins) and boot status',
      querystring: obj({ names: { ...str, minLength: 1, maxLength: 4096, description: 'a name or range; each must exist unless missingOk' }, missingOk: { type: 'boolean' } }, []),
      response: { 200: arrayOf('InventoryNodeView'), ...ERROR_RESPONSES },
    },
    handler: async (req) => {
      const q = req.query as { names?: string; missingOk?: boolean };
      return client(req).inventoryNodes({ ...(q.names !== undefined ? { names: q.names } : {}), ...(q.missingOk ? { missingOk: true } : {}) });
    },
  });
  r.post('/provision/nodes', {
    config: admin,
    schema: { tags, operationId: 'addInventoryNodes', summary: 'add nodes (all new; a range overlapping existing names adds none)', body: ref('NodeChange'), response: { 201: arrayOf('InventoryNode'), ...ERROR_RESPONSES } },
    handler: async (req, reply) => reply.code(201).send(await client(req).addInventoryNodes(req.body as NodeChangeRequest)),
  });
  r.post('/provision/nodes/update', {
    config: admin,
    schema: { tags, operationId: 'setInventoryNodes', summary: 'change nodes (every one must exist; all or none)', body: ref('NodeChange'), response: { 200: arrayOf('InventoryNode'), ...ERROR_RESPONSES } },
    handler: async (req) => client(req).setInventoryNodes(req.body as NodeChangeRequest),
  });
  r.post('/provision/nodes/delete', {
    config: admin,
    schema: {
      tags,
      operationId: 'deleteInventoryNodes',
      summary: 'delete nodes and their boot status (all or none, unless missingOk)',
      body: obj({ names: { ...str, minLength: 1, maxLength: 4096 }, missingOk: { type: 'boolean' } }, ['names']),
      response: { 200: obj({ deleted: strs }), ...ERROR_RESPONSES },
    },
    handler: async (req) => client(req).deleteInventoryNodes(req.body as { names: string; missingOk?: boolean }),
  });
  r.get('/provision/profiles', {
    config: admin,
    schema: { tags, operationId: 'profiles', summary: 'the profiles', response: { 200: arrayOf('Profile'), ...ERROR_RESPONSES } },
    handler: async (req) => client(req).profiles(),
  });
  r.post('/provision/profiles', {
    config: admin,
    schema: { tags, operationId: 'addProfile', summary: 'add a profile', body: ref('ProfileChange'), response: { 201: ref('Profile'), ...ERROR_RESPONSES } },
    handler: async (req, reply) => reply.code(201).send(await client(req).addProfile(req.body as ProfileChangeRequest)),
  });
  r.post('/provision/profiles/update', {
    config: admin,
    schema: { tags, operationId: 'setProfile', summary: 'change a profile', body: ref('ProfileChange'), response: { 200: ref('Profile'), ...ERROR_RESPONSES } },
    handler: async (req) => client(req).setProfile(req.body as ProfileChangeRequest),
  });
  r.delete('/provision/profiles/:name', {
    config: admin,
    schema: { tags, operationId: 'deleteProfile', summary: 'delete a profile (refused while a node uses it)', params: profileParams, response: { 204: { description: 'done', type: 'null' }, ...ERROR_RESPONSES } },
    handler: async (req, reply) => {
      await client(req).deleteProfile((req.params as { name: string }).name);
      return reply.code(204).send();
    },
  });
}
