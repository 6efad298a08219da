// The EC2 driver (src/sites/ec2.ts). No EC2 endpoint is reachable from here, so the driver was
// never run against EC2 and this file does not pretend it was: it checks the user data (a
// bash script, syntax-checked by bash), the requests as the AWS SDK serializes them (caught in
// the client's middleware stack, after serialization, and never sent), the mapping of EC2's
// answers, check() with and without credentials, and bad settings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EC2Client } from '@aws-sdk/client-ec2';
import { Ec2Driver, ec2UserData, viewOf } from '../../src/sites/ec2.js';
import { ElasticController, createDriver, driverKinds, type InstanceRequest } from '../../src/sites/index.js';
import { HttpClient } from '../../src/api/index.js';
import { WarrenError } from '../../src/common/index.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const req = (o: Partial<InstanceRequest> = {}): InstanceRequest => ({ node: 'aws-1', instanceType: 'c6i.large', joinToken: 'wjt_abc.DEF-123', serverUrl: 'https://head.example.org:8443', caPem: CA, labels: { site: 'aws' }, ...o });
const base = { site: 'aws', region: 'eu-west-1', imageId: 'ami-0123456789abcdef0', instanceTypes: ['c6i.large', 'c6i.xlarge'] };

/** A client whose requests are caught once serialized (the query-protocol body), never sent. */
function catching(): { client: EC2Client; sent: URLSearchParams[] } {
  const sent: URLSearchParams[] = [];
  const client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-secret' } });
  client.middlewareStack.add(
    (_next) => async (args) => {
      const body = (args.request as { body?: unknown }).body;
      sent.push(new URLSearchParams(String(body)));
      throw new Error('caught before sending');
    },
    { step: 'build', priority: 'low', name: 'warrenTestCatch' },
  );
  return { client, sent };
}

describe('EC2 user data', () => {
  it('a bash script: CA and token in files (the token 0600, never on a command line), Warren installed, the agent unit enabled', () => {
    const ud = ec2UserData(req({ walltimeSec: 7200 }));
    assert.match(ud, /^#!\/bin\/bash\n/);
    assert.ok(ud.includes(CA), 'the CA');
    assert.match(ud, /umask 077; printf 'WARREN_JOIN_TOKEN=%s\\n' 'wjt_abc\.DEF-123' > \/etc\/warren\/agent\.env/);
    assert.match(ud, /npm install -g --prefix \/opt\/warren warren/);
    assert.match(ud, /shutdown -h \+120/);
    const exec = ud.split('\n').find((l) => l.startsWith('ExecStart='))!;
    assert.match(exec, /\/usr\/bin\/node --max-semi-space-size=2 \/opt\/warren\/lib\/node_modules\/warren\/bin\/warren\.js agent --data \/var\/lib\/warren-agent --server https:\/\/head\.example\.org:8443 --name aws-1 --ca \/etc\/warren\/ca\.pem --labels site=aws/);
    assert.ok(!exec.includes('wjt_'), 'no token on ExecStart=');
    assert.match(ud, /EnvironmentFile=-\/etc\/warren\/agent\.env/);
    assert.match(ud, /systemctl enable --now warren-agent\.service\n$/);
    const syntax = spawnSync('bash', ['-n'], { input: ud, encoding: 'utf8' });
    assert.equal(syntax.status, 0, syntax.stderr);
  });

  it('a custom install command and directory; bad labels and tokens refused', () => {
    const ud = ec2UserData(req(), { install: 'tar -C /opt -xzf /srv/warren.tgz', warrenDir: '/opt/warren-0.1' });
    assert.match(ud, /tar -C \/opt -xzf \/srv\/warren\.tgz\ntest -f '\/opt\/warren-0\.1\/bin\/warren\.js'/);
    assert.equal(spawnSync('bash', ['-n'], { input: ud }).status, 0);
    assert.throws(() => ec2UserData(req({ labels: { site: 'a b' } })), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING');
    assert.throws(() => ec2UserData(req({ joinToken: "x'; rm -rf /" })), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING');
    assert.throws(() => ec2UserData(req({ caPem: 'WARREN_CA_PEM\n' })), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING');
  });
});

describe('EC2 requests as the SDK serializes them (not sent)', () => {
  it('RunInstances: image, type, user data, tags, spot market options', async () => {
    const { client, sent } = catching();
    const d = new Ec2Driver({ ...base, client, subnetId: 'subnet-0abc', securityGroupIds: ['sg-01', 'sg-02'], iamInstanceProfile: 'warren-node' });
    await assert.rejects(d.start(req({ spot: true })), (e) => e instanceof WarrenError && e.code === 'SITE_CLOUD_REQUEST_FAILED' && /RunInstances failed.*caught before sending/.test(e.message) && /site "aws"/.test(e.message));
    const p = sent[0]!;
    const want: Record<string, string> = {
      Action: 'RunInstances', ImageId: 'ami-0123456789abcdef0', InstanceType: 'c6i.large', MinCount: '1', MaxCount: '1',
      SubnetId: 'subnet-0abc', 'SecurityGroupId.1': 'sg-01', 'SecurityGroupId.2': 'sg-02', 'IamInstanceProfile.Name': 'warren-node',
      InstanceInitiatedShutdownBehavior: 'terminate', ClientToken: 'aws-aws-1',
      'InstanceMarketOptions.MarketType': 'spot', 'InstanceMarketOptions.SpotOptions.SpotInstanceType': 'one-time', 'InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior': 'terminate',
      'TagSpecification.1.ResourceType': 'instance', 'TagSpecification.1.Tag.1.Key': 'Name', 'TagSpecification.1.Tag.1.Value': 'aws-1',
      'TagSpecification.1.Tag.2.Key': 'warren:site', 'TagSpecification.1.Tag.2.Value': 'aws', 'TagSpecification.1.Tag.3.Key': 'warren:node', 'TagSpecification.1.Tag.3.Value': 'aws-1',
    };
    for (const [k, v] of Object.entries(want)) assert.equal(p.get(k), v, `${k} in ${p.toString().slice(0, 600)}`);
    assert.equal(Buffer.from(p.get('UserData')!, 'base64').toString(), ec2UserData(req({ spot: true })));
    // On demand: no market options.
    await assert.rejects(d.start(req({ node: 'aws-2' })));
    assert.equal([...sent[1]!.keys()].some((k) => k.startsWith('InstanceMarketOptions')), false);
  });

  it('DescribeInstances by the site tag; TerminateInstances by id', async () => {
    const { client, sent } = catching();
    const d = new Ec2Driver({ ...base, client });
    await assert.rejects(d.list(), (e) => e instanceof WarrenError && e.code === 'SITE_CLOUD_REQUEST_FAILED');
    assert.equal(sent[0]!.get('Action'), 'DescribeInstances');
    assert.equal(sent[0]!.get('Filter.1.Name'), 'tag:warren:site');
    assert.equal(sent[0]!.get('Filter.1.Value.1'), 'aws');
    await assert.rejects(d.stop('i-0123456789abcdef0'));
    assert.equal(sent[1]!.get('Action'), 'TerminateInstances');
    assert.equal(sent[1]!.get('InstanceId.1'), 'i-0123456789abcdef0');
    await assert.rejects(d.stop('not-an-id'), (e) => e instanceof WarrenError && e.code === 'SITE_UNKNOWN_INSTANCE');
    await assert.rejects(d.start(req({ instanceType: 'm5.huge' })), (e) => e instanceof WarrenError && e.code === 'SITE_UNKNOWN_INSTANCE_TYPE' && /c6i\.large, c6i\.xlarge/.test(e.message));
    assert.equal(sent.length, 2, 'nothing serialized for refused input');
  });

  it("EC2's instances as views: states, spot interruption as a reclaim", () => {
    const t = new Date('2026-12-04T01:00:00Z');
    const v = viewOf({ InstanceId: 'i-0abc12345', InstanceType: 'c6i.large', State: { Name: 'running' }, LaunchTime: t, InstanceLifecycle: 'spot', Tags: [{ Key: 'warren:node', Value: 'aws-3' }] });
    assert.deepEqual(v, { id: 'i-0abc12345', node: 'aws-3', instanceType: 'c6i.large', spot: true, state: 'running', requestedAt: t.getTime(), runningAt: t.getTime(), endedAt: null, reason: null });
    const r = viewOf({ InstanceId: 'i-0abc12345', State: { Name: 'terminated' }, StateReason: { Code: 'Server.SpotInstanceTermination', Message: 'Server.SpotInstanceTermination: Spot instance termination' } });
    assert.equal(r.state, 'stopped');
    assert.equal(r.reason, 'reclaimed (spot interruption)');
    assert.equal(viewOf({ State: { Name: 'pending' } }).state, 'booting');
    assert.equal(viewOf({ State: { Name: 'shutting-down' } }).state, 'stopping');
  });
});

describe('EC2 check(): credentials from the default chain', () => {
  const saved: Record<string, string | undefined> = {};
  const keys = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN'];
  before(() => {
    for (const k of keys) {
      saved[k] = process.env[k];
      delete process.env[k];
    }
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/warren-test/credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/warren-test/config';
    // This machine is no EC2 instance: the metadata service is not asked.
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });
  after(() => {
    for (const k of keys) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('none: SITE_CLOUD_NO_CREDENTIALS naming the site, exit 2, with what to do', async () => {
    const d = await createDriver('ec2', 'aws-east', { region: 'us-east-1', imageId: 'ami-0123456789abcdef0', instanceTypes: ['c6i.large'] }, { dataDir: '/nonexistent' });
    const t0 = Date.now();
    await assert.rejects(d.check(), (e) => e instanceof WarrenError && e.code === 'SITE_CLOUD_NO_CREDENTIALS' && e.exitCode === 2 && /site "aws-east" \(kind ec2, region us-east-1\)/.test(e.message) && /AWS_PROFILE/.test(e.hint ?? ''));
    assert.ok(Date.now() - t0 < 10_000, 'answered without waiting on the network');
  });

  it('the elastic controller refuses, before anything is started: no credentials, a budget spent, max < 0', async () => {
    // A server that is not there: had the controller called it (a join token, the nodes), the error would be API_UNREACHABLE.
    const cluster = new HttpClient({ url: 'https://127.0.0.1:9', token: 'unused' });
    const site = { name: 'aws', driver: new Ec2Driver({ ...base }), serverUrl: 'https://127.0.0.1:9', max: 2, instanceType: 'c6i.large', spot: true, pricePerHour: 0.1, granularitySec: 1, minimumSec: 60, bootTimeoutSec: 300, idleSec: 60 };
    const create = (o: object) => ElasticController.create({ sites: [{ ...site, ...o }], cluster, caPem: CA, demand: () => ({ aws: 1 }), ...o });
    await assert.rejects(create({}), (e) => e instanceof WarrenError && e.code === 'SITE_CLOUD_NO_CREDENTIALS' && e.exitCode === 2 && /site "aws"/.test(e.message));
    await assert.rejects(create({ budget: { limit: 1, spentElsewhere: () => 1 } }), (e) => e instanceof WarrenError && e.code === 'SITE_BUDGET_SPENT' && /"aws"/.test(e.message));
    await assert.rejects(create({ max: -1 }), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING' && /site "aws": max is -1/.test(e.message));
  });

  it('from the environment: check() passes (no request is sent)', async () => {
    process.env.AWS_ACCESS_KEY_ID = 'AKIDEXAMPLE';
    process.env.AWS_SECRET_ACCESS_KEY = 'not-a-secret';
    try {
      await new Ec2Driver({ ...base }).check();
    } finally {
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });
});

describe('site drivers by kind; EC2 settings', () => {
  it('an unknown kind names the site and the kinds there are (exit 2)', async () => {
    assert.ok(driverKinds().includes('local') && driverKinds().includes('ec2'));
    await assert.rejects(createDriver('gcp', 'burst', {}, { dataDir: '/tmp' }), (e) => e instanceof WarrenError && e.code === 'SITE_UNKNOWN_KIND' && e.exitCode === 2 && /site "burst": no driver of kind "gcp" \(there are: .*ec2.*local/.test(e.message));
  });
  it('bad EC2 settings name the site', () => {
    const bad = (o: object, re: RegExp) => assert.throws(() => new Ec2Driver({ ...base, ...o }), (e) => e instanceof WarrenError && e.code === 'SITE_BAD_SETTING' && /site "aws" \(kind ec2\)/.test(e.message) && re.test(e.message));
    bad({ region: 'Europe' }, /region "Europe"/);
    bad({ imageId: 'ubuntu' }, /image "ubuntu" is not an AMI id/);
    bad({ instanceTypes: [] }, /no instance types/);
    bad({ instanceTypes: ['big'] }, /"big" is not an EC2 instance type/);
  });
  it('a Slurm site is a driver kind too: its pilot driver, with its settings checked', async () => {
    assert.deepEqual(driverKinds(), ['ec2', 'local', 'slurm']);
    const d = await createDriver('slurm', 'hpc', { partition: 'batch' }, { dataDir: '/tmp' });
    assert.equal(d.kind, 'slurm');
    await assert.rejects(createDriver('slurm', 'hpc', { partition: 'no such' }, { dataDir: '/tmp' }), (e) => e instanceof WarrenError && e.code === 'SITE_SLURM_SETTINGS_INVALID' && e.exitCode === 2 && /hpc/.test(e.message));
  });
});
