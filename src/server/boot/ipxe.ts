// The iPXE scripts of the boot service (pure): the script of a known node (kernel, the node
// image's root file system and its two overlays as initrds, boot), and the scripts that tell a
// machine on its console why it cannot boot (an unknown MAC, a node image never built).

/** What the script of a node needs. */
export interface NodeScript {
  node: string;
  /** The boot service's base URL, http://ADDR:PORT (no trailing slash). */
  bootUrl: string;
  /** The node image's digest, sha256:HEX. */
  imageDigest: string;
  /** The node's MAC, normalized (aa:bb:cc:dd:ee:ff). */
  mac: string;
  kernelArgs: string[];
}

/** The initrd names, in the order the kernel unpacks them (later files win). */
export const INITRDS = ['rootfs.cpio.gz', 'system.cpio.gz', 'runtime.cpio.gz'] as const;

const hexOf = (digest: string): string => digest.replace(/^sha256:/, '');

/** One argument of an iPXE command line: iPXE splits on white space and expands `${...}`
 *  (it has no escape for it), so neither may appear in an argument. */
function ipxeArg(s: string): string {
  return s.replace(/\s/g, '').replace(/\$\{/g, '{');
}

/** Text shown by `echo`: one line, nothing iPXE would expand. */
function ipxeText(s: string): string {
  return s.replace(/\$\{/g, '$ {').replace(/[\r\n]+/g, ' ');
}

export function nodeScript(s: NodeScript): string {
  const img = `${s.bootUrl}/provision/images/${hexOf(s.imageDigest)}`;
  const mac = encodeURIComponent(s.mac);
  const args = [...INITRDS.map((n) => `initrd=${n}`), ...s.kernelArgs.map(ipxeArg).filter(Boolean)];
  return [
    '#!ipxe',
    `echo Warren: booting node ${ipxeText(s.node)} from node image ${s.imageDigest}`,
    `kernel ${img}/vmlinuz ${args.join(' ')} || goto failed`,
    `initrd --name ${INITRDS[0]} ${img}/rootfs.cpio.gz || goto failed`,
    `initrd --name ${INITRDS[1]} ${s.bootUrl}/provision/overlays/system.cpio.gz?mac=${mac} || goto failed`,
    `initrd --name ${INITRDS[2]} ${s.bootUrl}/provision/overlays/runtime.cpio.gz?mac=${mac} || goto failed`,
    'boot || goto failed',
    ':failed',
    `echo Warren: node ${ipxeText(s.node)} could not load its boot files from ${s.bootUrl} (see the server's log); rebooting in 30 s`,
    'sleep 30',
    'reboot',
    '',
  ].join('\n');
}

/** A script that explains, waits 30 s (long enough to read it) and reboots. */
export function messageScript(lines: string[]): string {
  return ['#!ipxe', ...lines.map((l) => `echo ${ipxeText(l)}`), 'echo Rebooting in 30 s.', 'sleep 30', 'reboot', ''].join('\n');
}

export function unknownMacScript(mac: string): string {
  return messageScript([
    `Warren: this machine (MAC ${mac}) is not in the inventory.`,
    `Add it on the server: warren node add NAME --mac ${mac} --ip ADDRESS --profile PROFILE`,
  ]);
}

export function noImageScript(node: string, image: string | null): string {
  return messageScript(
    image
      ? [`Warren: node ${node} boots image ${image}, whose node image has not been built.`, `Build it on the server: warren image node-build ${image}`]
      : [`Warren: node ${node} has no image (neither the node nor its profiles set one).`, `Set one on the server: warren node set ${node} --image IMAGE (or on its profile), then warren image node-build IMAGE`],
  );
}
