/**
 * The one way the client talks to a service (the runtime or the trainer): a request whose deadline
 * covers the answer's body too, and the answer sorted into what the caller can act on.
 *
 * - 2xx is the answer.
 * - 4xx is the caller's mistake: `RequestRejectedError`, with the service's `code` and `detail`.
 *   It is never retried, queued or hidden by a fallback: sending it again cannot succeed.
 * - Anything else (timeout, refused or cut connection, 5xx, a 2xx that is not JSON where JSON is
 *   due) means the service cannot answer now: `ServiceUnavailableError`, which the runtime client
 *   falls back on and the trainer client queues on.
 */

import {RequestRejectedError, ServiceUnavailableError} from './errors.js'

/**
 * @typedef SendOptions
 * @property {string | undefined} [body]
 *   JSON text; sent with `content-type: application/json`.
 * @property {Record<string, string>} [headers]
 * @property {number} [timeoutMs]
 *   This request's deadline; by default the service's.
 * @property {ReadonlyArray<number>} [answers]
 *   Statuses beyond 2xx whose body is an answer, not an error (a rejected or failed training).
 * @property {(data: unknown) => boolean} [answersIf]
 *   Whether such a status's body (parsed JSON; undefined when it is not JSON) is that answer: the
 *   same status may be an error of the service's (a 500 for a bug, a proxy's HTML page).
 */

/** A service at one address, with the deadline its requests get by default. */
export class Service {
  /** @type {string} */
  #base
  /** @type {number} */
  #timeoutMs

  /**
   * @param {string} base
   *   The address without trailing slashes (a path prefix is kept).
   * @param {number} timeoutMs
   */
  constructor(base, timeoutMs) {
    this.#base = base
    this.#timeoutMs = timeoutMs
  }

  /** The address, as the error messages name it. */
  get base() {
    return this.#base
  }

  /**
   * One request; the answer's JSON, or a typed error.
   *
   * @param {string} method
   * @param {string} path
   * @param {SendOptions} [options]
   * @returns {Promise<any>}
   * @throws {RequestRejectedError} a 4xx.
   * @throws {ServiceUnavailableError} no answer, a 5xx, or a body that is not JSON.
   */
  async json(method, path, options = {}) {
    const headers = {accept: 'application/json', ...options.headers}
    const {bytes} = await this.send(method, path, {...options, headers})
    const data = parse(bytes.toString('utf8'))
    if (data === undefined) {
      // A 2xx that is not JSON comes from something in between (a proxy's page), not the service.
      throw new ServiceUnavailableError(
        `ml-matching service at ${this.#base} is unreachable: ${method} ${path} answered with a body that is not JSON`
      )
    }
    return data
  }

  /**
   * One request; the 2xx answer's bytes (the response for its headers), or a typed error.
   *
   * @param {string} method
   * @param {string} path
   * @param {SendOptions} [options]
   * @returns {Promise<{response: Response, bytes: Buffer}>}
   * @throws {RequestRejectedError} a 4xx.
   * @throws {ServiceUnavailableError} no answer within the deadline, or anything but 2xx and 4xx.
   */
  async send(method, path, options = {}) {
    const {body, headers = {}, timeoutMs = this.#timeoutMs, answers = [], answersIf = () => true} = options
    const what = `${method} ${path}`
    let response
    let bytes
    try {
      response = await fetch(this.#base + path, {
        method,
        headers: {...(body === undefined ? {} : {'content-type': 'application/json'}), ...headers},
        ...(body === undefined ? {} : {body}),
        signal: AbortSignal.timeout(timeoutMs)
      })
      // Read inside the try: the deadline covers the body, and a connection cut mid-body is an outage.
      bytes = Buffer.from(await response.arrayBuffer())
    } catch (error) {
      throw new ServiceUnavailableError(
        `ml-matching service at ${this.#base} is unreachable: ${what} ${failure(error, timeoutMs)}`,
        {cause: error}
      )
    }
    if (response.ok) return {response, bytes}
    const text = bytes.toString('utf8')
    const data = parse(text)
    if (answers.includes(response.status) && answersIf(data)) return {response, bytes}
    const answer = typeof data === 'object' && data !== null ? data : {}
    const code = typeof answer.error === 'string' ? answer.error : `http_${response.status}`
    if (response.status >= 400 && response.status < 500) {
      const detail = typeof answer.detail === 'string' ? answer.detail : text.slice(0, 200)
      throw new RequestRejectedError(what, response.status, code, detail)
    }
    throw new ServiceUnavailableError(
      `ml-matching service at ${this.#base} is unreachable: ${what} answered ${response.status} ${text.slice(0, 200)}`,
      {status: response.status, code: typeof answer.error === 'string' ? answer.error : undefined}
    )
  }
}

/**
 * @param {string} text
 * @returns {any} the JSON value, or undefined when the text is not JSON
 */
function parse(text) {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Why a request got no answer, as the end of an error message: the timeout, or the socket's code.
 *
 * @param {unknown} error
 * @param {number} timeoutMs
 */
function failure(error, timeoutMs) {
  if (error instanceof Error && error.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`
  const cause =
    error instanceof Error ? /** @type {{code?: string, message?: string}} */ (error.cause) : undefined
  const reason = [cause?.code, cause?.message].filter(Boolean).join(': ')
  return `failed (${reason || (error instanceof Error ? error.message : String(error))})`
}
