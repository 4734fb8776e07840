/**
 * Errors thrown by ml-matching-client.
 *
 * ```
 * MLMatchingError                  root of everything this package throws on purpose
 * ├── InvalidInputError            a row (or unit key) the caller must fix: `.field`, `.fields`, `.reason`, `.row`
 * ├── ArtifactCorruptError         a version failed verification: `.check`
 * ├── RequestRejectedError         the service answered 4xx: `.status`, `.code`, `.detail`
 * ├── ServiceUnavailableError      timeout, connection failure or 5xx, and no local model
 * ├── ExplanationUnavailableError  `{explain: true}` of a version trained without an explainer
 * ├── SettingsError                a bad option (e.g. `loadVersion` without `adminToken`)
 * └── OutcomeQueueFullError        `queueLimit` outcomes already wait for the trainer
 * ```
 *
 * Every class sets `name`, so `err.name === 'InvalidInputError'` works across realms too, and a
 * `code` that is the Python runtime's code for the same error (its `schemas/errors.json`).
 */

/**
 * @typedef {'missing' | 'unknown' | 'type' | 'non-finite' | 'range' | 'shape' | 'unit'} InvalidReason
 *   Why a row was rejected (`unit`: its unit key).
 * @typedef {'sidecar' | 'sha256' | 'onnx' | 'input-width' | 'outputs' | 'golden-rows' | 'explain' | 'golden-explanations'} ArtifactCheck
 *   Which check a version failed (the same names as the Python runtime's `ArtifactCorrupt.check`).
 */

/** Root of every error ml-matching-client throws on purpose. */
export class MLMatchingError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions & {code?: string}} [options]
   */
  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'MLMatchingError'
    /**
     * The stable code of the error, as the Python runtime names it (e.g. `invalid_input`).
     * @type {string}
     */
    this.code = options.code ?? 'internal_error'
  }
}

/** A row the caller must fix; the message names the row, the feature and the reason. */
export class InvalidInputError extends MLMatchingError {
  /**
   * @param {string} message
   *   What is wrong, without the `row N: ` prefix (added here).
   * @param {{reason: InvalidReason, field?: string | undefined, fields?: ReadonlyArray<string>, row?: number | undefined}} where
   */
  constructor(message, where) {
    super((where.row === undefined ? '' : `row ${where.row}: `) + message, {code: 'invalid_input'})
    this.name = 'InvalidInputError'
    /** @type {InvalidReason} */
    this.reason = where.reason
    /** @type {string | undefined} the (first) feature or key at fault; undefined for a `shape` error */
    this.field = where.field
    /** @type {ReadonlyArray<string>} every feature at fault (all missing or all unknown ones) */
    this.fields = where.fields ?? (where.field === undefined ? [] : [where.field])
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
    super(`${check}: ${message}`, {code: 'artifact_corrupt'})
    this.name = 'ArtifactCorruptError'
    /** @type {ArtifactCheck} */
    this.check = check
  }
}

/** Explanations were asked of a version that has no explainer graph (trained before they existed). */
export class ExplanationUnavailableError extends MLMatchingError {
  /** @param {string} message */
  constructor(message) {
    super(message, {code: 'explanation_unavailable'})
    this.name = 'ExplanationUnavailableError'
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
    super(`${request} answered ${status} ${code}: ${detail}`, {code})
    this.name = 'RequestRejectedError'
    this.status = status
    this.detail = detail
  }
}

/** The service could not be reached (timeout, connection failure, 5xx) and nothing else could answer. */
export class ServiceUnavailableError extends MLMatchingError {
  /**
   * @param {string} message
   * @param {{status?: number | undefined, code?: string | undefined, cause?: unknown}} [options]
   *   `code`: the service's code when it answered 5xx (e.g. `model_not_ready`).
   */
  constructor(message, options = {}) {
    super(message, {cause: options.cause, code: options.code ?? 'service_unavailable'})
    this.name = 'ServiceUnavailableError'
    /** @type {number | undefined} the HTTP status when the service answered 5xx */
    this.status = options.status
  }
}

/** An option that cannot be used; the message names it. */
export class SettingsError extends MLMatchingError {
  /** @param {string} message */
  constructor(message) {
    super(message, {code: 'invalid_settings'})
    this.name = 'SettingsError'
  }
}

/** `queueLimit` outcomes already wait for an unreachable trainer: this one was not queued. */
export class OutcomeQueueFullError extends MLMatchingError {
  /** @param {string} message */
  constructor(message) {
    super(message, {code: 'outcome_queue_full'})
    this.name = 'OutcomeQueueFullError'
  }
}
