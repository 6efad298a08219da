// Limits of the HTTPS API and the command that regenerates its OpenAPI document (no imports:
// cheap to load from anywhere).

/** The largest request body: a submitted workflow (its text) may be this big. */
export const SUBMIT_BODY_LIMIT = 32 * 1024 * 1024;
/** Every other request body. */
export const BODY_LIMIT = 1024 * 1024;
/** The command that rewrites docs/api/openapi.json (for messages). */
export const OPENAPI_COMMAND = 'npm run openapi';
