// The identity providers the suite signs in at: the test IdPs of tests/idp/, each started as its own Node
// process on a port the system picks, which it prints once ready; closing its stdin stops it.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO, eventually } from '../hostile/harness.mjs';

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts `tests/idp/<dir>/<script>`; `ready` reads its output so far and returns what it announced once it
 * has (its URLs), which the promise resolves to along with `stop`.
 */
export async function startIdp(dir, script, ready) {
  const cwd = path.join(REPO, 'tests', 'idp', dir);
  const child = spawn(process.execPath, [script], { cwd, stdio: ['pipe', 'pipe', 'inherit'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  const announced = await eventually(`the ${dir} identity provider to listen`, 30000, () => {
    if (child.exitCode !== null) throw Object.assign(new Error(`the ${dir} identity provider exited (${child.exitCode})`), { fatal: true });
    return ready(output);
  });
  return {
    ...announced,
    stop: () => {
      child.stdin.end();
      return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
    },
  };
}
