/**
 * The trainer's side of the learning loop: outcomes that are never lost, trainings, jobs.
 *
 * An outcome the trainer cannot take now (timeout, connection failure, 5xx) waits in the outbox
 * (and its spool file) and is resent, with the id it was first sent with, until the trainer has it:
 * the trainer counts a resend of an id it stored as a duplicate, so nothing is stored twice even
 * when an answer was lost on the way back. A 4xx is the caller's mistake and is thrown.
 *
 * Prediction-ledger rows (from in-process scoring, see follow.js) go the same way to
 * `POST /predictions`, in the background and in batches: queued (and spooled) before the scoring
 * call returns, sent until the trainer has them; a resend is harmless (idempotent by
 * `predictionId`). Scoring never waits on the trainer: past `ledgerLimit` waiting rows new ones
 * are dropped and counted.
 */

import {randomUUID} from 'node:crypto'
import {InvalidInputError, RequestRejectedError, ServiceUnavailableError, SettingsError} from './errors.js'
import {isPredictionId} from './ids.js'
import {outcomeKey} from './outbox.js'
import {describe} from './sidecar.js'
import {kind, valueError} from './validate.js'

/** @import {Service} from './http.js' */
/** @import {LedgerRow} from './ledger.js' */
/** @import {Logger} from './options.js' */
/** @import {LedgerQueue, Outbox, PendingOutcome, QueuedRow} from './outbox.js' */

/**
 * @typedef RecordResult
 * @property {string} id
 *   The outcome's id: the one given, or a new one. A resend with it is never stored twice.
 * @property {'stored' | 'duplicate' | 'queued'} state
 *   `queued`: the trainer could not be reached; the outcome waits (and is spooled) to be resent.
 *
 * @typedef PredictionOutcomeResult
 * @property {string} predictionId
 *   The prediction it judges: the trainer stores one outcome per prediction, so a resend is
 *   never stored twice.
 * @property {'stored' | 'pending' | 'duplicate' | 'queued'} state
 *   `stored`: joined to its prediction; `pending`: stored, its prediction's ledger row has not reached
 *   the trainer yet (it joins when it does); `queued`: the trainer could not be reached.
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
/** Most ledger rows sent in one `POST /predictions` (the runtime's batch; the trainer takes 10,000). */
const LEDGER_BATCH = 1000
/**
 * Answers to `POST /predictions` that mean "not now" rather than "never": a trainer older than the
 * ledger (404, 405), a timeout or a rate limit. The rows wait.
 */
const LEDGER_LATER = [404, 405, 408, 429]
/** Answers to `POST /outcomes` that mean "not now": a timeout or a rate limit (a proxy's). The outcomes wait. */
const OUTCOMES_LATER = [408, 429]

/**
 * Whether `error` is the trainer's refusal of what was sent (resending cannot fix it), as opposed
 * to "not now" (`later`'s statuses, or no answer).
 *
 * @param {unknown} error
 * @param {ReadonlyArray<number>} later
 * @returns {error is RequestRejectedError}
 */
function refused(error, later) {
  return error instanceof RequestRejectedError && !later.includes(error.status)
}
/** How long ledger rows gather before they are sent (the runtime's sender sends from its own thread). */
const LEDGER_DELAY_MS = 100

/** An outcome's own id, as the trainer takes it (its `ID_PATTERN`). */
const OUTCOME_ID = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/

/**
 * Refuse here what the trainer would refuse: while it is down such an outcome was reported
 * `queued`, then dropped when the trainer refused it.
 *
 * @param {unknown} outcome
 */
function checkOutcome(outcome) {
  if (typeof outcome !== 'boolean') {
    throw new InvalidInputError(`recordOutcome: outcome must be true or false, got ${kind(outcome)}`, {
      reason: 'type',
      field: 'outcome'
    })
  }
}

/**
 * The features of an outcome: an object of finite numbers (their names are the trainer's to check:
 * it knows the feature set).
 *
 * @param {unknown} features
 */
function checkFeatures(features) {
  if (typeof features !== 'object' || features === null || Array.isArray(features)) {
    throw new InvalidInputError(`recordOutcome: expected an object of features, got ${kind(features)}`, {
      reason: 'shape'
    })
  }
  for (const [name, value] of Object.entries(features)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw valueError(name, value, undefined, 'recordOutcome: ')
    }
  }
}

/**
 * Whether a /train answer is a training's result (`{status, job, ...}`), not an error's body.
 *
 * @param {unknown} data
 * @returns {boolean}
 */
function isJobResult(data) {
  const answer = /** @type {Record<string, unknown>} */ (data)
  return (
    typeof data === 'object' &&
    data !== null &&
    typeof answer.status === 'string' &&
    typeof answer.job === 'string' &&
    !('error' in answer)
  )
}

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
  /** @type {LedgerQueue} */
  #ledger
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #retry
  /** @type {Promise<void> | undefined} */
  #flushing
  /** @type {Promise<boolean> | undefined} */
  #sending
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #sendSoon
  /** Rows became ready while a pass was under way. */
  #again = false
  #dropped = 0
  /** Whether the trainer's trouble with ledger rows was told (once, until it takes rows again). */
  #ledgerWarned = false
  /** Whether dropping ledger rows was told (once, until the trainer takes rows again). */
  #dropWarned = false
  /** Whether queuing outcomes was told (once, until every queued one is delivered). */
  #outcomesWarned = false

  /**
   * @param {Service | undefined} service
   *   The trainer; without it every call but `status` throws a `SettingsError`, and ledger rows
   *   are dropped (counted, with one warning).
   * @param {Outbox} outbox
   *   Outcomes a previous process spooled are in it already: their resend is scheduled here.
   * @param {LedgerQueue} ledger
   *   Ledger rows likewise.
   * @param {{logger: Logger, retryMs: number, trainTimeoutMs: number, adminToken: string | undefined}} settings
   */
  constructor(service, outbox, ledger, settings) {
    this.#service = service
    this.#outbox = outbox
    this.#ledger = ledger
    this.#logger = settings.logger
    this.#retryMs = settings.retryMs
    this.#trainTimeoutMs = settings.trainTimeoutMs
    this.#adminToken = settings.adminToken
    if (this.#outbox.size > 0 || this.#ledger.size > 0) this.#scheduleRetry()
  }

  /** How many outcomes wait for the trainer. */
  get outcomesWaiting() {
    return this.#outbox.size
  }

  /** How many prediction-ledger rows wait for the trainer. */
  get predictionsWaiting() {
    return this.#ledger.size
  }

  /** How many prediction-ledger rows were dropped: the queue was full, the trainer refused them, or there is no trainer. */
  get predictionsDropped() {
    return this.#dropped
  }

  /**
   * @param {Record<string, number>} features
   * @param {boolean} outcome
   * @param {{id?: string}} [options]
   * @returns {Promise<RecordResult>}
   */
  async recordOutcome(features, outcome, options = {}) {
    this.#need('recordOutcome')
    checkOutcome(outcome)
    if (options.id !== undefined && !(typeof options.id === 'string' && OUTCOME_ID.test(options.id))) {
      throw new InvalidInputError(
        `recordOutcome: field \`id\`: expected 1 to 128 letters, digits or ._:@/- (starting with a letter or digit), got ${kind(options.id)}`,
        {reason: 'type', field: 'id'}
      )
    }
    checkFeatures(features)
    // A copy: what is sent, spooled and resent is the row as it was now, though the caller reuses
    // its object (a DTO filled again for the next collaboration).
    const item = {id: options.id ?? randomUUID(), features: {...features}, outcome}
    const state = await this.#record(item)
    return {id: item.id, state: state === 'pending' ? 'stored' : state}
  }

  /**
   * The outcome of a prediction the runtime (or `followModel`) answered: the trainer takes its
   * features from the prediction ledger.
   *
   * @param {{predictionId: string, outcome: boolean}} judged
   * @returns {Promise<PredictionOutcomeResult>}
   */
  async recordPredictionOutcome(judged) {
    this.#need('recordOutcome')
    const {predictionId, outcome} = judged
    if (!isPredictionId(predictionId)) {
      throw new InvalidInputError(
        `recordOutcome: predictionId must be the UUIDv7 an answer carried (e.g. 01a22c21-8b25-7000-a33b-2b5900000000), got ${kind(predictionId)}`,
        {reason: 'type', field: 'predictionId'}
      )
    }
    checkOutcome(outcome)
    const state = await this.#record({predictionId, outcome})
    return {predictionId, state}
  }

  /**
   * Send one outcome, or queue it when the trainer cannot take it now.
   *
   * @param {PendingOutcome} item
   * @returns {Promise<'stored' | 'pending' | 'duplicate' | 'queued'>}
   */
  async #record(item) {
    const trainer = /** @type {Service} */ (this.#service)
    const key = outcomeKey(item)
    // Those already waiting go first; if some still wait after that, this one queues behind them.
    if (this.#outbox.size > 0) await this.flushOutcomes()
    if (this.#outbox.size > 0) {
      this.#outbox.add(item)
      return 'queued'
    }
    try {
      const answer = await trainer.json('POST', '/outcomes', {body: JSON.stringify(item)})
      if (answer.pending > 0) return 'pending'
      return answer.stored === 1 ? 'stored' : 'duplicate'
    } catch (error) {
      const later =
        error instanceof ServiceUnavailableError ||
        (error instanceof RequestRejectedError && OUTCOMES_LATER.includes(error.status))
      if (!later) throw error
      this.#outbox.add(item)
      if (!this.#outcomesWarned) {
        // Once per outage, as predict tells its fallback: a line per outcome flooded the log.
        this.#logger.warn(`${error.message}; outcome ${key} queued, and the next ones until it answers`)
        this.#outcomesWarned = true
      }
      this.#scheduleRetry()
      return 'queued'
    }
  }

  /**
   * Queue ledger rows for the trainer (spooled before this returns) and have them sent soon.
   * Never throws: a row that cannot be queued is dropped, counted and told.
   *
   * @param {ReadonlyArray<LedgerRow>} rows
   * @param {boolean} ready
   *   False while shadow versions still score them: `completePrediction` makes each ready.
   */
  recordPredictions(rows, ready) {
    if (!this.#service) {
      this.#drop(rows.length, 'no trainerUrl is configured (the trainer keeps the ledger)')
      return
    }
    let queued = 0
    try {
      for (const row of rows) if (this.#ledger.add(row, ready)) queued++
    } catch (error) {
      this.#drop(rows.length - queued, `the spool file cannot be written (${describe(error)})`)
      return
    }
    if (queued < rows.length)
      this.#drop(rows.length - queued, `${this.#ledger.size} rows already wait (ledgerLimit)`)
    if (ready) this.#sendPredictionsSoon()
  }

  /**
   * A queued row, now with its shadow scores: ready to send.
   *
   * @param {LedgerRow} row
   */
  completePrediction(row) {
    if (!this.#service) return
    try {
      this.#ledger.complete(row)
    } catch (error) {
      this.#logger.warn(`ml-matching: ledger row ${row.predictionId}: ${describe(error)}`)
    }
    this.#sendPredictionsSoon()
  }

  /**
   * @param {number} count
   * @param {string} why
   */
  #drop(count, why) {
    if (count <= 0) return
    if (!this.#dropWarned) {
      this.#logger.warn(`ml-matching: ${count} prediction-ledger row(s) dropped: ${why}`)
      this.#dropWarned = true
    }
    this.#dropped += count
  }

  #sendPredictionsSoon() {
    if (this.#sending) {
      this.#again = true // the pass under way may have looked already: another one after it
      return
    }
    if (this.#sendSoon) return
    // A moment's wait gathers the rows of many calls into one request.
    this.#sendSoon = setTimeout(() => {
      this.#sendSoon = undefined
      void this.#sendWaiting()
    }, LEDGER_DELAY_MS)
    this.#sendSoon.unref() // waiting rows must not keep the process alive: the spool keeps them
  }

  /**
   * Send the ledger rows that wait, in batches, once the shadows have scored those waiting for
   * them now (not rows queued after the call: under steady traffic some always wait); stops at
   * the first unreachable answer. A row the trainer refuses (4xx) is dropped with a
   * warning. Never rejects.
   *
   * @returns {Promise<void>}
   */
  async flushPredictions() {
    await this.#ledger.settled()
    while (this.#ledger.ready(1).length > 0) {
      if (!(await this.#sendWaiting())) return // unreachable: the rest waits for the retry
    }
  }

  /**
   * Send the rows ready to go; concurrent calls share one pass. Never rejects.
   *
   * @returns {Promise<boolean>} false when the trainer could not be reached
   */
  #sendWaiting() {
    this.#sending ??= this.#sendPredictions()
      .catch((error) => {
        this.#logger.warn(`ml-matching: sending ledger rows failed: ${describe(error)}`)
        return false
      })
      .finally(() => {
        this.#sending = undefined
        if (!this.#again) return
        this.#again = false
        if (!this.#retry) this.#sendPredictionsSoon()
      })
    return this.#sending
  }

  /**
   * One pass: full batches while a backlog lasts; rows that come meanwhile gather for the next.
   *
   * @returns {Promise<boolean>} false when the trainer could not be reached
   */
  async #sendPredictions() {
    const trainer = this.#service
    if (!trainer) return false // nothing can be sent (rows a spool holds wait for a client with a trainer)
    let sent = 0
    for (;;) {
      const batch = this.#ledger.ready(LEDGER_BATCH)
      if (batch.length === 0) break
      try {
        await this.#postRows(trainer, batch)
        this.#ledger.remove(batch)
        sent += batch.length
        if (batch.length < LEDGER_BATCH) break
      } catch (error) {
        if (refused(error, LEDGER_LATER)) {
          if (!(await this.#dropRefusedRows(batch, trainer))) return false
          continue
        }
        if (!this.#ledgerWarned) {
          this.#logger.warn(`${describe(error)}; ${this.#ledger.size} prediction-ledger row(s) wait`)
          this.#ledgerWarned = true
        }
        this.#scheduleRetry()
        return false
      }
    }
    if (sent > 0) this.#dropWarned = false
    if (sent > 0 && this.#ledgerWarned) {
      this.#ledgerWarned = false
      this.#logger.info(`ml-matching trainer at ${trainer.base} has every queued prediction-ledger row`)
    }
    return true
  }

  /**
   * @param {Service} trainer
   * @param {ReadonlyArray<QueuedRow>} rows
   */
  async #postRows(trainer, rows) {
    const body = `{"rows":[${rows.map((row) => row.json).join(',')}]}`
    return trainer.json('POST', '/predictions', {body})
  }

  /**
   * A batch was refused: send its rows one by one, dropping, with a warning, each one refused.
   *
   * @param {ReadonlyArray<QueuedRow>} batch
   * @param {Service} trainer
   * @returns {Promise<boolean>} false when the trainer became unreachable (the rest wait)
   */
  async #dropRefusedRows(batch, trainer) {
    for (const row of batch) {
      try {
        await this.#postRows(trainer, [row])
      } catch (error) {
        if (!refused(error, LEDGER_LATER)) {
          this.#scheduleRetry()
          return false
        }
        this.#dropped++
        this.#logger.warn(
          `ml-matching trainer refused prediction-ledger row ${row.id}: ${error.detail}; dropped`
        )
      }
      this.#ledger.remove([row])
    }
    return true
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
    if (this.#ledger.size > 0) void this.#sendWaiting() // what the outcomes join
    while (this.#outbox.size > 0) {
      const batch = this.#outbox.peek().slice(0, BATCH)
      try {
        await trainer.json('POST', '/outcomes', {body: JSON.stringify({outcomes: batch})})
        this.#outbox.drop(batch.length)
      } catch (error) {
        if (refused(error, OUTCOMES_LATER)) {
          if (await this.#dropRefused(batch, trainer)) continue
          return // unreachable meanwhile: a retry is scheduled
        }
        this.#scheduleRetry() // unreachable again: stop here, the rest keeps its order
        return
      }
    }
    this.#logger.info(`ml-matching trainer at ${trainer.base} has every queued outcome`)
    this.#outcomesWarned = false
  }

  /**
   * A batch was refused (the trainer stores all of a batch or none): send its outcomes one by one,
   * dropping, with a warning, each one refused: resending cannot fix it.
   *
   * @param {ReadonlyArray<PendingOutcome>} batch
   * @param {Service} trainer
   * @returns {Promise<boolean>} false when the trainer became unreachable (a retry is scheduled)
   */
  async #dropRefused(batch, trainer) {
    for (const item of batch) {
      try {
        await trainer.json('POST', '/outcomes', {body: JSON.stringify(item)})
      } catch (error) {
        if (!refused(error, OUTCOMES_LATER)) {
          this.#scheduleRetry()
          return false
        }
        this.#logger.warn(
          `ml-matching trainer refused queued outcome ${outcomeKey(item)}: ${error.detail}; dropped`
        )
      }
      this.#outbox.drop(1)
    }
    return true
  }

  #scheduleRetry() {
    if (this.#retry || !this.#service) return
    this.#retry = setTimeout(() => {
      this.#retry = undefined
      void this.#sendWaiting()
      if (this.#outbox.size === 0) return
      void this.flushOutcomes().catch((error) =>
        this.#logger.warn(`ml-matching: resending outcomes failed: ${describe(error)}`)
      )
    }, this.#retryMs)
    this.#retry.unref() // what waits must not keep the process alive: the spool keeps it
  }

  /**
   * @param {TrainOptions} [options]
   * @returns {Promise<any>}
   */
  async train(options = {}) {
    const trainer = this.#need('train')
    const unknown = Object.keys(options).filter((key) => key !== 'data' && key !== 'wait')
    if (unknown.length > 0) {
      // `{wiat: false}` waited for a whole training, and promoted it.
      throw new SettingsError(`train: unknown option ${unknown.join(', ')} (the options are data, wait)`)
    }
    if (!this.#adminToken)
      throw new SettingsError('train needs the adminToken option (the ML_SERVICE_ADMIN_TOKEN)')
    const headers = {
      accept: 'application/json',
      authorization: `Bearer ${this.#adminToken}`,
      ...(options.wait === false ? {prefer: 'respond-async'} : {})
    }
    const body = options.data === undefined ? undefined : JSON.stringify(options.data)
    // 422 (rejected: too few rows, one class) and 500 (failed) answer with the job's result; the
    // same statuses without one (an error of the trainer's, a proxy's page) are thrown as any other.
    const {bytes} = await trainer.send('POST', '/train', {
      body,
      headers,
      timeoutMs: this.#trainTimeoutMs,
      answers: [422, 500],
      answersIf: isJobResult
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
