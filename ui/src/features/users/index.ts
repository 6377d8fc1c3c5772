/** What other features may use of the users feature. */
export { getAllUsersQueryOptions } from './api/users';
