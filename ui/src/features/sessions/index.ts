/** What other features and the app shell may use of the sessions feature. */
export { applySessionEvent, getSessionsQueryOptions, sessionKeys, sessionsByState, useCreateSession } from './api/sessions';
