// @ts-check
/**
 * Shared JSDoc types for the wire objects of PROTOCOL.md and the app state.
 * This module exports nothing at run time; it exists so every other module can
 * `import('./types.js').Message` and tsc checks both sides of the contract.
 */

/**
 * @typedef {object} User
 * @property {string} id
 * @property {string} username
 * @property {string} displayName
 * @property {string} avatarColor
 * @property {boolean} online
 * @property {string|null} lastSeen
 * @property {string} createdAt
 * @property {'user'|'admin'} role
 */

/**
 * @typedef {object} FileInfo
 * @property {string} id
 * @property {string} filename
 * @property {string} originalName
 * @property {string} mimeType
 * @property {number} size
 * @property {string} url
 * @property {string} uploadedBy
 * @property {string} createdAt
 */

/**
 * @typedef {object} Message
 * @property {string} id
 * @property {string} from
 * @property {string|null} to
 * @property {string|null} groupId
 * @property {'text'|'file'} kind
 * @property {string} content
 * @property {FileInfo|null} file
 * @property {string|null} clientId
 * @property {string} createdAt
 * @property {string|null} readAt
 * @property {string[]} [readBy]
 */

/**
 * @typedef {object} Group
 * @property {string} id
 * @property {string} name
 * @property {string} description
 * @property {string} admin
 * @property {string[]} members
 * @property {string} createdAt
 */

/** Where a message goes: exactly one of the two. @typedef {{to: string}|{groupId: string}} Target */

/**
 * An unsent message held by the outbox until the server acknowledges it.
 * @typedef {object} OutboxEntry
 * @property {string} clientId  idempotency key, reused on every resend
 * @property {Target} target
 * @property {string} content
 * @property {'text'|'file'} kind
 * @property {string} [fileId]
 * @property {FileInfo} [file]   kept only so the UI can preview what is being sent
 * @property {string} createdAt  local time of the first attempt
 * @property {'queued'|'sending'|'failed'} status
 * @property {number} attempts
 * @property {string} [error]
 */

/** @typedef {{audio: boolean, video: boolean, screen: boolean}} MediaFlags */

/** @typedef {{code: string, message: string}} WireError */

export {};
