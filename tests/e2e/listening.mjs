// Where a `streamspace serve` or `up` started on port 0 listens: the system picks free ports, so
// no test names a port another process may hold, and the control plane logs what it bound.

import fs from 'node:fs';

/** The `[api, sessions]` ports from the `control plane listening` line of `log` (plain or JSON), once written. */
export function listeningPorts(log) {
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  const line = text.split('\n').find((entry) => entry.includes('control plane listening'));
  const port = (name) => Number(line?.match(new RegExp(`\\b${name}\\W+[0-9.]+:(\\d+)`))?.[1]);
  return line && port('api') && port('sessions') ? [port('api'), port('sessions')] : undefined;
}
