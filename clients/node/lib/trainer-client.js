/**
 * The trainer's side of the learning loop: outcomes that are never lost, trainings, jobs.
 *
 * An outcome the trainer cannot take now (timeout, connection failure, 5xx) waits in the outbox
 * (and its spool file) and is resent, with the id it was first sent with, until the trainer has it:
 * the trainer counts a resend of an id it stored as a duplicate, so nothing is stored twice even
 * when an answer was lost on the way back. A 4xx is the caller's mistake and is thrown.
 */

import {randomUUID} from 'node:crypto'
import {RequestRejectedError, ServiceUnavailableError, SettingsError} from './errors.js'
import {describe} from './sidecar.js'

/** @import {Service} from './http.js' */
/** @import {Logger} from './options.js' */
/** @import {Outbox} from './outbox.js' */

/**
 * @typedef RecordResult
 * @property {string} id
 *   The outcome's id: the one given, or a new one. A resend with it is never stored twice.
 * @property {'stored' | 'duplicate' | 'queued'} state
 *   `queued`: the trainer could not be reached; the outcome waits (and is spooled) to be resent.
 *
 * @typedef {{reachable: boolean, outcomes: number | null, runningJob: string | null, error?: string}} TrainerStatus
 *   What the trainer's `GET /health` showed.
 *
 * @typedef TrainOptions
 * @property {boolean} [wait=true]
 *   The trainer answers when the job is done (up to its TRAIN_WAIT_SECONDS); false: at once, with
 *   the job to poll (`job(id)`).
 * @property {{features: ReadonlyArray<Record<string, number>>, outcomes: ReadonlyArray<boolean>}} [data]
 *   Train on exactly this (the seed's body) instead of the stored outcomes.
 */

/** Most outcomes sent in one request when the outbox is emptied. */
const BATCH = 500

/** The trainer's endpoints, and the outcomes that wait for it. */
export class TrainerClient {
  /** @type {Service | undefined} */
  #service
  /** @type {Outbox} */
  #outbox
  /** @type {Logger} */
  #logger
  /** @type {number} */
  #retryMs
  /** @type {number} */
  #trainTimeoutMs
  /** @type {string | undefined} */
  #adminToken
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retry
  /** @type {Promise<void> | undefined} */
  #flushing

  /**
   * @param {Service | undefined} service
   *   The trainer; without it every call but `status` throws a `SettingsError`.
   * @param {Outbox} outbox
   *   Outcomes a previous process spooled are in it already: their resend is scheduled here.
   * @param {{logger: Logger, retryMs: number, trainTimeoutMs: number, adminToken: string | undefined}} settings
   */
  constructor(service, outbox, settings) {
    this.#service = service
    this.#outbox = outbox
    this.#logger = settings.logger
    this.#retryMs = settings.retryMs
    this.#trainTimeoutMs = settings.trainTimeoutMs
    this.#adminToken = settings.adminToken
    if (this.#outbox.size > 0) this.#scheduleRetry()
  }

  /** How many outcomes wait for the trainer. */
  get outcomesWaiting() {
    return this.#outbox.size
  }

  /**
   * @param {Record<string, number>} features
   * @param {boolean} outcome
   * @param {{id?: string}} [options]
   * @returns {Promise<RecordResult>}
   */
  async recordOutcome(features, outcome, options = {}) {
    const trainer = this.#need('recordOutcome')
    if (typeof outcome !== 'boolean') {
      throw new TypeError(`recordOutcome: outcome must be true or false, got ${typeof outcome}`)
    }
    const item = {id: options.id ?? randomUUID(), features, outcome}
    if (this.#outbox.size > 0) {
      this.#outbox.add(item) // keep the order: it goes after those already waiting
      await this.flushOutcomes()
      const waiting = this.#outbox.peek().some((queued) => queued.id === item.id)
      return {id: item.id, state: waiting ? 'queued' : 'stored'}
    }
    try {
      const answer = await trainer.json('POST', '/outcomes', {body: JSON.stringify(item)})
      return {id: item.id, state: answer.stored === 1 ? 'stored' : 'duplicate'}
    } catch (error) {
      if (!(error instanceof ServiceUnavailableError)) throw error
      this.#outbox.add(item)
      this.#logger.warn(`${error.message}; outcome ${item.id} queued (${this.#outbox.size} waiting)`)
      this.#scheduleRetry()
      return {id: item.id, state: 'queued'}
    }
  }

  /**
   * Send what waits, oldest first; concurrent calls share one pass.
   *
   * @returns {Promise<void>}
   */
  flushOutcomes() {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined))
    return this.#flushing
  }

  async #flush() {
    const trainer = this.#need('flushOutcomes')
    while (this.#outbox.size > 0) {
      const batch = this.#outbox.peek().slice(0, BATCH)
      try {
        await trainer.json('POST', '/outcomes', {body: JSON.stringify({outcomes: batch})})
        this.#outbox.drop(batch.length)
      } catch (error) {
        if (error instanceof RequestRejectedError) {
          await this.#dropRefused(batch, trainer)
          continue
        }
        this.#scheduleRetry() // unreachable again: stop here, the rest keeps its order
        return
      }
    }
    this.#logger.info(`ml-matching trainer at ${trainer.base} has every queued outcome`)
  }

  /**
   * A batch was refused (the trainer stores all of a batch or none): send its outcomes one by one,
   * dropping, with a warning, each one refused: resending cannot fix it.
   *
   * @param {ReadonlyArray<{id: string}>} batch
   * @param {Service} trainer
   */
  async #dropRefused(batch, trainer) {
    for (const item of batch) {
      try {
        await trainer.json('POST', '/outcomes', {body: JSON.stringify(item)})
      } catch (error) {
        if (!(error instanceof RequestRejectedError)) throw error
        this.#logger.warn(`ml-matching trainer refused queued outcome ${item.id}: ${error.detail}; dropped`)
      }
      this.#outbox.drop(1)
    }
  }

  #scheduleRetry() {
    if (this.#retry || !this.#service) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.flushOutcomes().catch((error) =>
        this.#logger.warn(`ml-matching: resending outcomes failed: ${describe(error)}`)
      )
    }, this.#retryMs)
    this.#retry.unref() // waiting outcomes must not keep the process alive: the spool keeps them
  }

  /**
   * @param {TrainOptions} [options]
   * @returns {Promise<any>}
   */
  async train(options = {}) {
    const trainer = this.#need('train')
    if (!this.#adminToken)
      throw new SettingsError('train needs the adminToken option (the ML_SERVICE_ADMIN_TOKEN)')
    const headers = {
      accept: 'application/json',
      authorization: `Bearer ${this.#adminToken}`,
      ...(options.wait === false ? {prefer: 'respond-async'} : {})
    }
    const body = options.data === undefined ? undefined : JSON.stringify(options.data)
    // 422 (rejected: too few rows, one class) and 500 (failed) answer with the job's result.
    const {bytes} = await trainer.send('POST', '/train', {
      body,
      headers,
      timeoutMs: this.#trainTimeoutMs,
      answers: [422, 500]
    })
    return JSON.parse(bytes.toString('utf8'))
  }

  /**
   * @param {string} id
   * @returns {Promise<any>}
   */
  async job(id) {
    return this.#need('job').json('GET', `/train/${encodeURIComponent(id)}`)
  }

  /**
   * The trainer's part of `status()`; never throws.
   *
   * @returns {Promise<TrainerStatus | null>} null when no trainer is configured
   */
  async status() {
    if (!this.#service) return null
    try {
      const health = await this.#service.json('GET', '/health')
      return {reachable: true, outcomes: health.outcomes, runningJob: health.runningJob ?? null}
    } catch (error) {
      return {reachable: false, outcomes: null, runningJob: null, error: describe(error)}
    }
  }

  /**
   * @param {string} what
   * @returns {Service}
   */
  #need(what) {
    if (!this.#service) throw new SettingsError(`${what} needs the trainerUrl option (the trainer's address)`)
    return this.#service
  }
}
