/** What other features and the app shell may use of the agents feature. */
export { agentKeys, applyAgentEvent, getAgentsQueryOptions } from './api/agents';
