// The identity providers the suite signs in at: the test IdPs of tests/idp/, each started as its own Node
// process on a port the system picks, which it prints as `listening <port>`; closing its stdin stops it.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO, eventually } from '../hostile/harness.mjs';

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts `tests/idp/<dir>/<script>` and resolves to its base URL once it listens. */
export async function startIdp(dir, script, env = {}) {
  const cwd = path.join(REPO, 'tests', 'idp', dir);
  const child = spawn(process.execPath, [script], { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  const port = await eventually(`the ${dir} identity provider to listen`, 30000, () => {
    if (child.exitCode !== null) throw Object.assign(new Error(`the ${dir} identity provider exited (${child.exitCode})`), { fatal: true });
    return output.match(/listening (\d+)/)?.[1];
  });
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: () => {
      child.stdin.end();
      return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)));
    },
  };
}
