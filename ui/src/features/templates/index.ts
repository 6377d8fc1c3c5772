/** What other features may use of the templates feature. */
export { getTemplatesQueryOptions } from './api/templates';
