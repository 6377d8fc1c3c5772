/** What other features may use of the organizations feature. */
export { getOrgQueryOptions, getOrgsQueryOptions, useUpdateOrg } from './api/orgs';
