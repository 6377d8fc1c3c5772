// What a suite's Docker agent leaves on the host: containers of sessions a failed test did not stop,
// their networks, and the home volumes that outlive sessions by design (ADR 0032). The agent labels
// each with its id, so a suite removes exactly its own.
import { execFileSync } from 'node:child_process';

/**
 * @param {string[]} args
 * @returns {string[]} the ids `docker` printed
 */
function docker(args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .split(/\s+/)
    .filter(Boolean);
}

/**
 * Removes every container (with its anonymous volumes), network and volume labelled with `agentId`.
 * @param {string} agentId
 * @returns {number} how many were removed
 */
export function removeAgentLeftovers(agentId) {
  if (!agentId) return 0;
  const filter = `label=streamspace.agent=${agentId}`;
  const containers = docker(['ps', '-aq', '--filter', filter]);
  if (containers.length) docker(['rm', '-fv', ...containers]);
  const networks = docker(['network', 'ls', '-q', '--filter', filter]);
  if (networks.length) docker(['network', 'rm', ...networks]);
  const volumes = docker(['volume', 'ls', '-q', '--filter', filter]);
  if (volumes.length) docker(['volume', 'rm', '-f', ...volumes]);
  return containers.length + networks.length + volumes.length;
}
