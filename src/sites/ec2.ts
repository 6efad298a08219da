// The AWS EC2 driver (issue 14), through @aws-sdk/client-ec2. An instance is an EC2 instance
// started by RunInstances with user data (a cloud-init shell script, `ec2UserData`) that puts
// the cluster CA and the one-use join token on the machine, installs Warren (the site's
// `install` command), writes `warren-agent.service` (src/install's systemdUnit) and starts it;
// the agent joins the server as the node name the request gave, which is also the instance's
// Name tag (with warren:site and warren:node tags: `list` finds this site's instances by them).
// Spot instances through InstanceMarketOptions (one-time, terminate on interruption); a spot
// interruption shows as a terminated instance whose state reason is
// Server.SpotInstanceTermination. Credentials come from the SDK's default provider chain.
//
// NOT RUN AGAINST EC2: no EC2 endpoint is reachable from where this was written. The tests
// check the user data, the requests as the SDK serializes them (stopped in its middleware
// stack before anything is sent) and check() without credentials (docs/sites.md).
import { EC2Client, RunInstancesCommand, DescribeInstancesCommand, TerminateInstancesCommand, type Instance, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { WarrenError } from '../common/index.js';
import { systemdUnit } from '../install/index.js';
import type { InstanceRequest, InstanceState, InstanceView, SiteDriver } from './driver.js';

export interface Ec2SiteOptions {
  site: string;
  region: string;
  /** The AMI (a Linux with systemd and Node 20, or one the install command can put Node on). */
  imageId: string;
  /** EC2 instance types this site may start (e.g. c6i.large). */
  instanceTypes: readonly string[];
  subnetId?: string;
  securityGroupIds?: readonly string[];
  keyName?: string;
  /** An instance profile name (the agent needs no AWS permissions itself). */
  iamInstanceProfile?: string;
  /** Shell commands that install Warren so that `${warrenDir}/bin/warren.js` exists (default: npm from the registry). */
  install?: string;
  /** Where Warren is installed on the instance (default /opt/warren/lib/node_modules/warren). */
  warrenDir?: string;
  /** The node binary on the instance (default /usr/bin/node). */
  nodePath?: string;
  /** A client to use (tests add middleware to it); default one for `region` with the default credential chain. */
  client?: EC2Client;
}

const TAG_SITE = 'warren:site';
const TAG_NODE = 'warren:node';
const DEFAULT_DIR = '/opt/warren/lib/node_modules/warren';
const DEFAULT_INSTALL = 'command -v npm >/dev/null || (apt-get update && apt-get install -y nodejs npm) || dnf install -y nodejs npm\nnpm install -g --prefix /opt/warren warren';

function hereDoc(marker: string, text: string): string {
  if (text.split('\n').includes(marker)) throw new WarrenError('SITE_BAD_SETTING', `user data: the text holds the line ${marker}`, { hint: 'remove that line' });
  return `<<'${marker}'\n${text.endsWith('\n') ? text : `${text}\n`}${marker}`;
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The cloud-init user data of an instance: a shell script that installs and starts `warren agent`. */
export function ec2UserData(req: InstanceRequest, o: Pick<Ec2SiteOptions, 'install' | 'warrenDir' | 'nodePath'> = {}): string {
  const dir = o.warrenDir ?? DEFAULT_DIR;
  const labels = Object.entries(req.labels).map(([k, v]) => `${k}=${v}`).join(',');
  for (const [k, v] of Object.entries(req.labels)) {
    if (!/^[A-Za-z0-9._/-]+$/.test(k) || !/^[A-Za-z0-9._/:-]*$/.test(v)) throw new WarrenError('SITE_BAD_SETTING', `label ${k}=${v} has characters a label cannot have`, { hint: 'use letters, digits, . _ / - (and : in values)' });
  }
  if (!/^[A-Za-z0-9._-]+$/.test(req.joinToken)) throw new WarrenError('SITE_BAD_SETTING', 'the join token has characters a join token never has', { hint: 'mint it with createJoinToken' });
  const unit = systemdUnit({
    kind: 'agent',
    program: { node: o.nodePath ?? '/usr/bin/node', nodeArgs: ['--max-semi-space-size=2'], script: `${dir}/bin/warren.js` },
    data: '/var/lib/warren-agent',
    envFile: '/etc/warren/agent.env',
    servers: [req.serverUrl],
    name: req.node,
    ca: '/etc/warren/ca.pem',
    ...(labels ? { labels } : {}),
  });
  const lines = [
    '#!/bin/bash',
    `# Warren agent ${req.node} (written by Warren's EC2 driver): install Warren, then run \`warren agent\`.`,
    'set -euo pipefail',
    'install -d -m 0755 /etc/warren',
    `cat > /etc/warren/ca.pem ${hereDoc('WARREN_CA_PEM', req.caPem)}`,
    '(umask 077; printf \'WARREN_JOIN_TOKEN=%s\\n\' ' + shq(req.joinToken) + ' > /etc/warren/agent.env)',
    ...(req.walltimeSec !== undefined ? [`# Most seconds it may live: ${req.walltimeSec}`, `shutdown -h +${Math.max(1, Math.floor(req.walltimeSec / 60))} || true`] : []),
    o.install ?? DEFAULT_INSTALL,
    `test -f ${shq(`${dir}/bin/warren.js`)}`,
    `cat > /etc/systemd/system/${unit.name} ${hereDoc('WARREN_UNIT', unit.text)}`,
    'systemctl daemon-reload',
    `systemctl enable --now ${unit.name}`,
    '',
  ];
  return lines.join('\n');
}

/** The RunInstances request of an instance (spot through InstanceMarketOptions). */
export function runInstancesInput(o: Ec2SiteOptions, req: InstanceRequest): RunInstancesCommandInput {
  const userData = ec2UserData(req, o);
  if (Buffer.byteLength(userData) > 16 * 1024) throw new WarrenError('SITE_BAD_SETTING', `site "${o.site}": the user data of ${req.node} is ${Buffer.byteLength(userData)} bytes, over EC2's 16 KiB`, { hint: 'shorten the install command (put Warren in the AMI)' });
  return {
    ImageId: o.imageId,
    InstanceType: req.instanceType as RunInstancesCommandInput['InstanceType'],
    MinCount: 1,
    MaxCount: 1,
    UserData: Buffer.from(userData).toString('base64'),
    ClientToken: `${o.site}-${req.node}`.slice(0, 64),
    InstanceInitiatedShutdownBehavior: 'terminate',
    ...(o.subnetId ? { SubnetId: o.subnetId } : {}),
    ...(o.securityGroupIds?.length ? { SecurityGroupIds: [...o.securityGroupIds] } : {}),
    ...(o.keyName ? { KeyName: o.keyName } : {}),
    ...(o.iamInstanceProfile ? { IamInstanceProfile: { Name: o.iamInstanceProfile } } : {}),
    ...(req.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
    TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: req.node }, { Key: TAG_SITE, Value: o.site }, { Key: TAG_NODE, Value: req.node }] }],
  };
}

function stateOf(i: Instance): InstanceState {
  switch (i.State?.Name) {
    case 'pending':
      return 'booting';
    case 'running':
      return 'running';
    case 'shutting-down':
    case 'stopping':
      return 'stopping';
    case 'terminated':
    case 'stopped':
      return 'stopped';
    default:
      return 'pending';
  }
}

export function viewOf(i: Instance): InstanceView {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value;
  const st = stateOf(i);
  const reason = i.StateReason?.Code === 'Server.SpotInstanceTermination' ? 'reclaimed (spot interruption)' : (i.StateReason?.Message ?? i.StateTransitionReason ?? null);
  return {
    id: i.InstanceId ?? '',
    node: tag(TAG_NODE) ?? '',
    instanceType: String(i.InstanceType ?? ''),
    spot: i.InstanceLifecycle === 'spot',
    state: st,
    requestedAt: i.LaunchTime ? i.LaunchTime.getTime() : 0,
    // EC2 says when it launched, not when the agent joined: running is "the machine runs".
    runningAt: st === 'running' && i.LaunchTime ? i.LaunchTime.getTime() : null,
    endedAt: null,
    reason: st === 'stopped' || st === 'stopping' ? reason || null : null,
  };
}

export class Ec2Driver implements SiteDriver {
  readonly kind = 'ec2';
  private readonly client: EC2Client;
  private closed = false;

  constructor(private readonly o: Ec2SiteOptions) {
    const where = `site "${o.site}" (kind ec2)`;
    if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(o.region ?? '')) throw new WarrenError('SITE_BAD_SETTING', `${where}: region "${o.region ?? ''}" is not an AWS region name`, { hint: 'e.g. region: eu-west-1' });
    if (!/^ami-[0-9a-f]{8,17}$/.test(o.imageId ?? '')) throw new WarrenError('SITE_BAD_SETTING', `${where}: image "${o.imageId ?? ''}" is not an AMI id`, { hint: 'e.g. image: ami-0123456789abcdef0 (an AMI of that region)' });
    if (!o.instanceTypes?.length) throw new WarrenError('SITE_BAD_SETTING', `${where} has no instance types`, { hint: 'e.g. instance-types: [c6i.large]' });
    for (const t of o.instanceTypes) if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(t)) throw new WarrenError('SITE_BAD_SETTING', `${where}: "${t}" is not an EC2 instance type`, { hint: 'e.g. c6i.large' });
    this.client = o.client ?? new EC2Client({ region: o.region });
  }

  /** Credentials from the default chain (environment, shared files, SSO, container or instance metadata); no request is sent. */
  async check(): Promise<void> {
    const provider = this.client.config.credentials;
    try {
      const c = await provider();
      if (!c?.accessKeyId) throw new Error('the provider chain gave no access key');
    } catch (e) {
      throw new WarrenError('SITE_CLOUD_NO_CREDENTIALS', `site "${this.o.site}" (kind ec2, region ${this.o.region}): no AWS credentials: ${(e as Error).message.split('\n')[0]}`, {
        hint: 'give the server AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE with ~/.aws/credentials, SSO, or an instance role; then run again',
      });
    }
  }

  private async send<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof WarrenError) throw e;
      const err = e as { name?: string; message?: string; Code?: string };
      if (err.name === 'CredentialsProviderError') throw new WarrenError('SITE_CLOUD_NO_CREDENTIALS', `site "${this.o.site}": no AWS credentials for ${what}: ${err.message}`, { hint: 'give the server AWS credentials (see `check`)' });
      throw new WarrenError('SITE_CLOUD_REQUEST_FAILED', `site "${this.o.site}": EC2 ${what} failed: ${err.Code ?? err.name ?? 'error'}: ${err.message ?? String(e)}`, { hint: 'see the message: limits, permissions, an AMI or subnet of another region' });
    }
  }

  async start(req: InstanceRequest): Promise<InstanceView> {
    if (this.closed) throw new WarrenError('SITE_CLOSED', `site "${this.o.site}": its driver was closed`, { hint: 'make a new driver' });
    if (!this.o.instanceTypes.includes(req.instanceType)) throw new WarrenError('SITE_UNKNOWN_INSTANCE_TYPE', `site "${this.o.site}" has no instance type "${req.instanceType}" (it has ${[...this.o.instanceTypes].sort().join(', ')})`, { hint: "use one of the site's instance types" });
    const input = runInstancesInput(this.o, req);
    const out = await this.send('RunInstances', () => this.client.send(new RunInstancesCommand(input)));
    const i = out.Instances?.[0];
    if (!i?.InstanceId) throw new WarrenError('SITE_CLOUD_REQUEST_FAILED', `site "${this.o.site}": RunInstances answered without an instance`, { hint: 'try again; see the EC2 console' });
    return { ...viewOf(i), node: req.node, spot: req.spot === true, state: 'pending', requestedAt: Date.now() };
  }

  async list(): Promise<InstanceView[]> {
    const views: InstanceView[] = [];
    let token: string | undefined;
    do {
      const out = await this.send('DescribeInstances', () => this.client.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAG_SITE}`, Values: [this.o.site] }], ...(token ? { NextToken: token } : {}) })));
      for (const r of out.Reservations ?? []) for (const i of r.Instances ?? []) views.push(viewOf(i));
      token = out.NextToken;
    } while (token);
    return views;
  }

  async stop(id: string): Promise<void> {
    if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new WarrenError('SITE_UNKNOWN_INSTANCE', `site "${this.o.site}" has no instance ${id} (not an EC2 instance id)`, { hint: "see the site's instances (list)" });
    // Terminating a terminated instance succeeds (EC2 is idempotent here).
    await this.send('TerminateInstances', () => this.client.send(new TerminateInstancesCommand({ InstanceIds: [id] })));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const live = (await this.list().catch(() => [])).filter((v) => v.state !== 'stopped');
    if (live.length) await this.send('TerminateInstances', () => this.client.send(new TerminateInstancesCommand({ InstanceIds: live.map((v) => v.id) })));
    this.client.destroy();
  }
}
