/**
 * Errors thrown by ml-matching-client.
 *
 * ```
 * MLMatchingError                  root of everything this package throws on purpose
 * ├── InvalidInputError            a row the caller must fix: `.field`, `.reason`, `.row`
 * ├── ArtifactCorruptError         a version failed verification: `.check`
 * ├── RequestRejectedError         the service answered 4xx: `.status`, `.code`, `.detail`
 * └── ServiceUnavailableError      timeout, connection failure or 5xx, and no local model
 * ```
 *
 * Every class sets `name`, so `err.name === 'InvalidInputError'` works across realms too.
 */

/**
 * @typedef {'missing' | 'unknown' | 'type' | 'non-finite' | 'range' | 'shape'} InvalidReason
 *   Why a row was rejected.
 * @typedef {'sidecar' | 'sha256' | 'onnx' | 'input-width' | 'outputs' | 'golden-rows'} ArtifactCheck
 *   Which check a version failed (the same names as the Python runtime's `ArtifactCorrupt.check`).
 */

/** Root of every error ml-matching-client throws on purpose. */
export class MLMatchingError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(message, options) {
    super(message, options)
    this.name = 'MLMatchingError'
  }
}

/** A row the caller must fix; the message names the row, the feature and the reason. */
export class InvalidInputError extends MLMatchingError {
  /**
   * @param {string} message
   *   What is wrong, without the row/feature prefix (added here).
   * @param {{reason: InvalidReason, field?: string | undefined, row?: number | undefined}} where
   */
  constructor(message, where) {
    const prefix =
      (where.row === undefined ? '' : `row ${where.row}: `) +
      (where.field === undefined ? '' : `feature \`${where.field}\`: `)
    super(prefix + message)
    this.name = 'InvalidInputError'
    /** @type {InvalidReason} */
    this.reason = where.reason
    /** @type {string | undefined} the feature (or key) at fault; undefined for a `shape` error */
    this.field = where.field
    /** @type {number | undefined} index in the batch; undefined for a single row */
    this.row = where.row
  }
}

/** A model version that failed a check; it must not serve. */
export class ArtifactCorruptError extends MLMatchingError {
  /**
   * @param {ArtifactCheck} check
   * @param {string} message
   */
  constructor(check, message) {
    super(`${check}: ${message}`)
    this.name = 'ArtifactCorruptError'
    /** @type {ArtifactCheck} */
    this.check = check
  }
}

/** The service answered with a 4xx: the request is wrong, and no fallback hides it. */
export class RequestRejectedError extends MLMatchingError {
  /**
   * @param {string} request
   *   `METHOD /path`.
   * @param {number} status
   * @param {string} code
   *   The service's `error` code (e.g. `invalid_input`), or `http_<status>` if the body had none.
   * @param {string} detail
   *   The service's `detail` message.
   */
  constructor(request, status, code, detail) {
    super(`${request} answered ${status} ${code}: ${detail}`)
    this.name = 'RequestRejectedError'
    this.status = status
    this.code = code
    this.detail = detail
  }
}

/** The service could not be reached (timeout, connection failure, 5xx) and nothing else could answer. */
export class ServiceUnavailableError extends MLMatchingError {
  /**
   * @param {string} message
   * @param {{status?: number | undefined, cause?: unknown}} [options]
   */
  constructor(message, options = {}) {
    super(message, {cause: options.cause})
    this.name = 'ServiceUnavailableError'
    /** @type {number | undefined} the HTTP status when the service answered 5xx */
    this.status = options.status
  }
}
