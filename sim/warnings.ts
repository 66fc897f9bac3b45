import vm from 'node:vm';

/**
 * The AWS SDK warns once per loaded copy that it will need Node >= 22; the deployed Lambdas run
 * Node 24, the simulation Node 20, and every run loads fresh copies of the bundles, so the warning
 * would flood the output. Only that warning is dropped: every other one reaches Node's own
 * listeners (the default printer included) as before.
 */
const NAME = 'NodeVersionSupportWarning';
let installed = false;

export function isNodeVersionSupportWarning(w: Error): boolean {
  return w.name === NAME || w.message.startsWith(`${NAME}:`);
}

/** Node's own process object: under jest, `process` is a sandbox copy whose listeners Node never calls. */
function nodeProcess(): NodeJS.Process {
  try {
    return vm.runInThisContext('process') as NodeJS.Process;
  } catch {
    return process;
  }
}

export function quietNodeVersionSupportWarning(proc: NodeJS.Process = nodeProcess()): void {
  if (installed) return;
  installed = true;
  const previous = proc.listeners('warning') as ((w: Error) => void)[];
  proc.removeAllListeners('warning');
  proc.on('warning', (w: Error) => {
    if (isNodeVersionSupportWarning(w)) return;
    for (const l of previous) l.call(proc, w);
  });
}
