// Stand-in images for Fuzzball's public examples (../shared/fuzzball-examples), whose real
// images are on registries this machine cannot reach: each provides the programs its
// workflow calls, made of Debian's busybox-static and, where Debian has the real program
// (BLAST 2.12.0, OpenMPI 4.1, MPICH 4.0), the real program. Pushed to a loopback
// docker-registry under the original repository names behind a per-registry prefix, which
// Warren reaches through its registry mirror configuration (docs/images.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { parseImageRef, type RegistryImageRef } from '../../src/image/index.js';
import { repoRoot } from '../helpers.js';
import type { LoopbackRegistry } from '../image/oci/registry.js';
import { Rootfs } from './rootfs.js';

/** The path prefix in the loopback registry that stands for each public registry. */
export const MIRROR_PREFIX: Record<string, string> = { 'docker.io': 'dockerhub', 'quay.io': 'quay', 'repository.ciq.com': 'ciq', 'nvcr.io': 'nvcr' };

/** `$WARREN_HOME/mirrors.yaml` sending each public registry to its prefix in `registry`. */
export function mirrorsYaml(registry: string): string {
  return 'mirrors:\n' + Object.entries(MIRROR_PREFIX).map(([r, p]) => `  ${r}: ${registry}/${p}\n`).join('');
}

/** Where the stand-in for `uri` (as the workflow writes it) is pushed in `registry`. */
export function mirrored(uri: string, registry: string): string {
  const r = parseImageRef(uri) as RegistryImageRef;
  const prefix = MIRROR_PREFIX[r.registry];
  if (!prefix) throw new Error(`no mirror prefix for ${r.registry}`);
  return `${r.kind}://${registry}/${prefix}/${r.repository}:${r.tag ?? 'latest'}`;
}

export const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

// ------------------------------------------------------------------ BLAST's data

/** Deterministic pseudo-random protein sequences (an LCG), so the data is the same every run. */
function sequence(seed: number, length: number): string {
  const aa = 'ACDEFGHIKLMNPQRSTVWY';
  let x = seed >>> 0;
  let s = '';
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    s += aa[x % aa.length];
  }
  return s;
}

/** A segment the query shares with one database entry, so that blastp has a hit to report. */
const SHARED = 'LCGRGFIRAVIFACGGSRWKRLSEQCCA';
export const DATABASE_IDS = ['Q90523', 'P80049', 'P83981', 'P83982', 'P83983', 'P83977', 'P83984', 'P83985', 'P27950'];
export const BLAST_HIT = 'P80049';

/** FASTA records by accession: synthetic stand-ins (NCBI is not reachable), labelled so. */
export function proteinRecord(id: string): string | undefined {
  if (id === 'P01349') return `>sp|P01349.2|RELX_CARTA synthetic stand-in for P01349 (relaxin)\n${sequence(1349, 8)}${SHARED}QQ\n`;
  const i = DATABASE_IDS.indexOf(id);
  if (i < 0) return undefined;
  let s = sequence(1000 + i, 120);
  if (id === BLAST_HIT) s = s.slice(0, 40) + SHARED + s.slice(40);
  return `>sp|${id}.1|SYN_${id} synthetic stand-in for ${id}\n${s}\n`;
}

/** A stand-in for NCBI's E-utilities on loopback: efetch.fcgi?db=protein&id=A,B&rettype=fasta. */
export async function startEutils(): Promise<{ url: string; requests: string[]; stop(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    requests.push(u.pathname + u.search);
    const ids = (u.searchParams.get('id') ?? '').split(',').filter(Boolean);
    const records = ids.map(proteinRecord);
    if (u.pathname !== '/entrez/eutils/efetch.fcgi' || u.searchParams.get('db') !== 'protein' || u.searchParams.get('rettype') !== 'fasta' || !ids.length || records.some((r) => !r)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('Error: unknown database, format or id\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(records.join(''));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/entrez/eutils`,
    requests,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ------------------------------------------------------------------ the stand-ins

const JUPYTER = `#!/bin/sh
# Stand-in for Jupyter Notebook (test/examples; the real image is quay.io/jupyter/minimal-notebook):
# serves the notebook directory's listing over HTTP with busybox httpd on 8888, or the next
# free port as Jupyter does, prints its URLs as Jupyter does, and runs until stopped.
[ "$1" = notebook ] || { echo "jupyter (stand-in): only 'jupyter notebook' is provided" >&2; exit 2; }
shift
ip=localhost port=8888 token= dir=$PWD
for a in "$@"; do
  case "$a" in
    --ip=*) ip=\${a#--ip=} ;;
    --port=*) port=\${a#--port=} ;;
    --NotebookApp.token=*|--ServerApp.token=*|--IdentityProvider.token=*) token=\${a#*=} ;;
    --notebook-dir=*|--ServerApp.root_dir=*) dir=\${a#*=} ;;
    --allow-root|--no-browser) ;;
    *) echo "jupyter (stand-in): unrecognized argument $a" >&2; exit 2 ;;
  esac
done
[ -d "$dir" ] || { echo "[C ServerApp] Bad config encountered during initialization: No such directory: '$dir'" >&2; exit 1; }
www=$(mktemp -d)
mkdir -p "$www/tree" "$www/api"
{ echo "<html><head><title>Home Page - Select or create a notebook</title></head><body><h1>$dir</h1><ul>"
  ls -a "$dir" | while read -r f; do echo "<li>$f</li>"; done
  echo "</ul><p>Jupyter Notebook stand-in for user $NB_USER</p></body></html>"; } > "$www/tree/index.html"
echo "{\\"version\\": \\"stand-in\\", \\"root_dir\\": \\"$dir\\", \\"user\\": \\"$NB_USER\\"}" > "$www/api/status"
echo "[I ServerApp] Serving notebooks from local directory: $dir"
for try in $(seq 0 50); do
  p=$((port + try))
  httpd -f -p "$ip:$p" -h "$www" &
  pid=$!
  usleep 300000
  if kill -0 $pid 2>/dev/null; then
    echo "[I ServerApp] Jupyter Server (stand-in) is running at:"
    echo "[I ServerApp] http://$(hostname):$p/tree\${token:+?token=$token}"
    echo "[I ServerApp]     http://127.0.0.1:$p/tree\${token:+?token=$token}"
    wait $pid
    exit $?
  fi
  echo "[I ServerApp] The port $p is already in use, trying another port."
done
echo "[C ServerApp] ERROR: the notebook server could not be started because no available port could be found." >&2
exit 1
`;

const VNC = `#!/bin/sh
# Stand-in for the xfce4-desktop image's start-vncserver.sh (test/examples): no X server, no
# TurboVNC; it serves noVNC's pages on tcp port 6080, where the real image's noVNC proxy
# always runs, and runs until stopped.
mkdir -p "$HOME/.vnc" /tmp/novnc
echo "<html><head><title>noVNC</title></head><body>xfce4-desktop stand-in on $(hostname)</body></html>" > /tmp/novnc/vnc_auto.html
cp /tmp/novnc/vnc_auto.html /tmp/novnc/vnc.html
echo "Desktop 'TurboVNC: $(hostname):1 (stand-in)' started on display $(hostname):1"
echo "noVNC (stand-in): navigate to http://$(hostname):6080/vnc_auto.html"
exec httpd -f -p 0.0.0.0:6080 -h /tmp/novnc
`;

const efetch = (eutils: string) => `#!/bin/sh
# Stand-in for EDirect's efetch (test/examples): asks an E-utilities stand-in on loopback
# (${eutils}) for what the real efetch asks NCBI's E-utilities, which this machine cannot reach.
db= format= id=
while [ $# -gt 0 ]; do
  case "$1" in
    -db) db=$2; shift 2 ;;
    -format) format=$2; shift 2 ;;
    -id) id=$2; shift 2 ;;
    *) echo "efetch (stand-in): unknown argument $1" >&2; exit 2 ;;
  esac
done
exec wget -q -O - "${eutils}/efetch.fcgi?db=$db&id=$id&rettype=$format"
`;

// OpenFOAM v2212's layout, the parts the motorBike example touches.
const FOAM = '/usr/lib/openfoam/openfoam2212';
const FOAM_BIN = `${FOAM}/platforms/linux64GccDPInt32Opt/bin`;
export const FOAM_APPS = ['surfaceFeatureExtract', 'blockMesh', 'decomposePar', 'snappyHexMesh', 'topoSet', 'patchSummary', 'potentialFoam', 'checkMesh', 'simpleFoam', 'reconstructParMesh', 'reconstructPar'];

const FOAM_BASHRC = `# Stand-in for OpenFOAM v2212's etc/bashrc (test/examples): the variables the example uses.
export WM_PROJECT=OpenFOAM WM_PROJECT_VERSION=v2212
export WM_PROJECT_DIR=\${WM_PROJECT_DIR:-${FOAM}}
export FOAM_TUTORIALS=$WM_PROJECT_DIR/tutorials
export FOAM_APPBIN=$WM_PROJECT_DIR/platforms/linux64GccDPInt32Opt/bin
export PATH=$FOAM_APPBIN:$PATH
`;

const RUN_FUNCTIONS = `# Stand-in for OpenFOAM's bin/tools/RunFunctions (test/examples): restore0Dir.
restore0Dir() {
  [ -d 0.orig ] || { echo "No 0.orig/ to restore" >&2; return 1; }
  if [ "$1" = -processor ]; then
    for d in processor*; do rm -rf "$d/0"; cp -r 0.orig "$d/0"; done
    echo "Restore 0/ from 0.orig/  [processor directories]"
  else
    rm -rf 0; cp -r 0.orig 0
    echo "Restore 0/ from 0.orig/"
  fi
}
`;

/** One program for all of OpenFOAM's applications the example runs: each checks what the real one reads and leaves what the next step reads. */
const FOAM_APP = `#!/bin/bash
# Stand-in for OpenFOAM v2212's applications (test/examples): not a CFD solver. Each checks
# that the case holds what the real application reads, in the order of the motorBike
# tutorial, and writes what the next step reads; with -parallel, each MPI rank works in its
# own processorN directory and the number of ranks must match the decomposition, as in
# OpenFOAM.
set -e
app=$(basename "$0")
parallel=0
for a in "$@"; do [ "$a" = -parallel ] && parallel=1; done
rank=\${OMPI_COMM_WORLD_RANK:-0}
size=\${OMPI_COMM_WORLD_SIZE:-1}
fatal() { echo "--> FOAM FATAL ERROR: (stand-in $app, rank $rank) $*" >&2; exit 1; }
need() { for f in "$@"; do [ -e "$f" ] || fatal "cannot find $PWD/$f"; done; }
if [ "$rank" = 0 ]; then
  echo "/*---------------------------------------------------------------------------*\\\\"
  echo "  $app: stand-in for OpenFOAM v2212 (test/examples)"
  echo "Exec   : $app $*"
fi
need system/controlDict
n=$(sed -n 's/^ *numberOfSubdomains *\\([0-9]*\\);.*/\\1/p' system/decomposeParDict 2>/dev/null)
d=.
if [ $parallel = 1 ]; then
  [ "$size" = "$n" ] || fatal "number of processor directories = $n is not equal to the number of processors = $size"
  d=processor$rank
  need $d/constant/polyMesh/points
fi
case $app in
  surfaceFeatureExtract) need constant/triSurface/motorBike.obj.gz; echo "features of motorBike.obj" > constant/triSurface/motorBike.eMesh ;;
  blockMesh) mkdir -p constant/polyMesh; echo "blockMesh" > constant/polyMesh/points ;;
  decomposePar)
    need constant/polyMesh/points
    for i in $(seq 0 $((n - 1))); do mkdir -p processor$i/constant/polyMesh; cp constant/polyMesh/points processor$i/constant/polyMesh/; done
    echo "Processor directories: $n" ;;
  snappyHexMesh) need constant/triSurface/motorBike.eMesh; echo "snappyHexMesh" >> $d/constant/polyMesh/points ;;
  topoSet) echo "topoSet" >> $d/constant/polyMesh/points; mkdir -p $d/constant/polyMesh/sets ;;
  patchSummary) need $d/0/U $d/0/p ;;
  potentialFoam) need $d/0/U; echo "phi" > $d/0/phi ;;
  checkMesh) need $d/constant/polyMesh/points; echo "nonOrthoAngle" > $d/constant/nonOrthoAngle ;;
  simpleFoam) need $d/0/phi; mkdir -p $d/500; cp $d/0/* $d/500/ ;;
  reconstructParMesh) need processor0/constant/polyMesh/points; cp processor0/constant/polyMesh/points constant/polyMesh/points.reconstructed ;;
  reconstructPar) need processor0/500/U; mkdir -p 500; cp processor0/500/* 500/ ;;
  *) fatal "not stood in" ;;
esac
echo "$app: rank $rank of $size done in $d"
[ "$rank" = 0 ] && echo "End" || true
`;

function foamFile(cls: string, object: string, body: string): string {
  return `/*--------------------------------*- C++ -*----------------------------------*\\\\\n  stand-in (test/examples)\n\\\\*---------------------------------------------------------------------------*/\nFoamFile\n{\n    version     2.0;\n    format      ascii;\n    class       ${cls};\n    object      ${object};\n}\n${body}\n`;
}

function addOpenFoam(r: Rootfs): void {
  r.file(`${FOAM}/etc/bashrc`, FOAM_BASHRC).file(`${FOAM}/bin/tools/RunFunctions`, RUN_FUNCTIONS);
  r.script(`${FOAM_BIN}/foam-app`, FOAM_APP);
  for (const a of FOAM_APPS) r.link(`${FOAM_BIN}/${a}`, 'foam-app');
  const bike = `${FOAM}/tutorials/incompressible/simpleFoam/motorBike`;
  r.file(`${bike}/system/controlDict`, foamFile('dictionary', 'controlDict', 'application simpleFoam;\nendTime 500;'));
  r.file(`${bike}/system/decomposeParDict.6`, foamFile('dictionary', 'decomposeParDict', 'numberOfSubdomains 6;\nmethod hierarchical;\ncoeffs\n{\n    n (3 2 1);\n}'));
  r.file(`${bike}/system/blockMeshDict`, foamFile('dictionary', 'blockMeshDict', 'scale 1;'));
  r.file(`${bike}/system/snappyHexMeshDict`, foamFile('dictionary', 'snappyHexMeshDict', 'castellatedMesh true;'));
  for (const f of ['U', 'p', 'k', 'nut', 'omega']) r.file(`${bike}/0.orig/${f}`, foamFile('volScalarField', f, 'internalField uniform 0;'));
  r.file(`${bike}/constant/transportProperties`, foamFile('dictionary', 'transportProperties', 'nu 1.5e-05;'));
  r.file(`${FOAM}/tutorials/resources/geometry/motorBike.obj.gz`, gzipSync('# stand-in for the motorBike surface\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n'));
}

// The launchers' plugins, help texts and configuration (hwloc's optional plugins are left
// out: they pull in libxml2 and ICU's 30 MB of data, which the examples do not need).
const OPENMPI_TREES = ['/usr/lib/x86_64-linux-gnu/openmpi/lib', '/usr/lib/x86_64-linux-gnu/pmix2', '/usr/share/openmpi', '/usr/share/pmix', '/etc/openmpi'];
const MPICH_TREES = ['/usr/lib/x86_64-linux-gnu/ucx'];

export interface StandInOptions {
  registry: LoopbackRegistry;
  work: string;
  eutils: string;
}

/** What each stand-in needs on this machine, and the reason it is left out when missing. */
export function missing(name: 'blast' | 'openmpi' | 'mpich'): string | false {
  if (name === 'blast') return has('blastp') && has('makeblastdb') ? false : 'BLAST is not installed (ncbi-blast+, scripts/apt/examples.txt)';
  if (name === 'openmpi') return has('mpicc.openmpi') && existsSync('/usr/bin/orted') ? false : 'OpenMPI is not installed (scripts/apt/mpi.txt)';
  return has('mpicc.mpich') && existsSync('/usr/bin/mpiexec.hydra') ? false : 'MPICH is not installed (scripts/apt/mpi.txt)';
}

/** Build and push every stand-in image the examples name (those whose parts are installed). */
export async function pushStandIns(o: StandInOptions): Promise<void> {
  const host = o.registry.host;
  const at = (uri: string) => mirrored(uri, host);
  let n = 0;
  const root = () => new Rootfs(join(o.work, `rootfs-${++n}`));
  const jobs: Promise<void>[] = [];

  // hello-world, printer: Alpine's shell and tools are busybox's.
  jobs.push(root().busybox().pushOci(at('docker://alpine:latest')));
  jobs.push(root().busybox().script('/opt/conda/bin/jupyter', JUPYTER).pushOci(at('docker://quay.io/jupyter/minimal-notebook:latest'), ['PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NB_USER=jovyan']));
  jobs.push(root().busybox().script('/usr/local/bin/start-vncserver.sh', VNC).pushSif(at('oras://repository.ciq.com/internal-hpc-apps-testing/sifs/xfce4-desktop.sif:latest'), join(o.work, 'xfce4-desktop.sif')));
  // GPU examples: their shell (nvidia-smi comes from the node's driver, mounted by Warren).
  jobs.push(root().busybox().pushOci(at('docker://nvidia/dcgm:3.3.8-1-ubi9')));
  jobs.push(root().busybox().pushOci(at('docker://nvcr.io/hpc/lammps:29Sep2021')));
  jobs.push(root().busybox().script('/usr/local/bin/efetch', efetch(o.eutils)).pushOci(at('docker://ncbi/edirect:20.6')));
  if (!missing('blast')) jobs.push(root().busybox().host(['/usr/bin/blastp', '/usr/bin/makeblastdb']).pushOci(at('docker://ncbi/blast:2.12.0')));
  if (!missing('openmpi')) {
    const foam = root().busybox().host(['/usr/bin/bash', '/usr/bin/orterun', '/usr/bin/orted'], OPENMPI_TREES).link('/usr/bin/mpirun', 'orterun');
    addOpenFoam(foam);
    jobs.push(foam.pushOci(at('docker://opencfd/openfoam-default:2212')));
    const prog = join(o.work, 'mpi_hello_world.openmpi');
    execFileSync('mpicc.openmpi', ['-O2', '-o', prog, join(repoRoot, 'test', 'examples', 'fixtures', 'mpi_hello_world.c')]);
    const ompi = root().busybox().host(['/usr/bin/orterun', '/usr/bin/orted'], OPENMPI_TREES).link('/usr/bin/mpirun', 'orterun').host([prog]);
    ompi.file('/usr/local/bin/mpi_hello_world', readFileSync(prog), 0o755);
    jobs.push(ompi.pushSif(at('oras://docker.io/anderbubble/openmpi-hello-world.sif'), join(o.work, 'openmpi-hello-world.sif')));
  }
  if (!missing('mpich')) {
    const prog = join(o.work, 'mpi_hello_world.mpich');
    execFileSync('mpicc.mpich', ['-O2', '-o', prog, join(repoRoot, 'test', 'examples', 'fixtures', 'mpi_hello_world.c')]);
    const mpich = root().busybox().host(['/usr/bin/mpiexec.hydra', '/usr/bin/hydra_pmi_proxy', prog], MPICH_TREES).link('/usr/bin/mpiexec', 'mpiexec.hydra').link('/usr/bin/mpirun', 'mpiexec.hydra');
    mpich.file('/usr/local/bin/mpi_hello_world', readFileSync(prog), 0o755);
    jobs.push(mpich.pushSif(at('oras://docker.io/anderbubble/mpich-hello-world.sif'), join(o.work, 'mpich-hello-world.sif')));
  }
  await Promise.all(jobs);
}
