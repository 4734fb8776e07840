/**
 * A local model that follows what a runtime serves: its version, and the experiment and the
 * long-lived holdout it follows.
 *
 * Every `followMs` it asks the runtime (`GET /health`): when another version serves there, it
 * downloads it, verifies it (sha256, signature, golden rows) and swaps; when the runtime follows
 * another experiment, or another revision of it, it reads it (`GET /experiment`), downloads and
 * verifies every version it needs (control, candidates, shadows) and swaps them in whole; when it
 * follows another holdout, it reads it (`GET /holdout`) and loads its frozen version the same way.
 * On any failure what it has keeps scoring and the next check tries again.
 *
 * Scoring mirrors the runtime's (`ml_matching.runtime.serving`): with a `unit`, the holdout places
 * it first (a held unit is served by the frozen version, outside any experiment), then the unit's
 * arm serves (assigned exactly as the runtime assigns it), else the served version; without a
 * unit, or while the experiment is not running, control serves, outside the experiment and the
 * holdout. Every answer carries a `predictionId`; the predictions the `ledger` option names (and,
 * under the holdout, every keyed one, unless it is `off`) are recorded as ledger rows, queued (and spooled) before the
 * answer returns, then sent to the trainer. Shadow versions score the rows served under the
 * experiment after the answer has returned; a shadow that fails or hangs is recorded on the row
 * (`{version, error}`) and never delays or fails an answer.
 */

import {
  CONTROL,
  HASH_VERSION,
  armIndex,
  bucketOf,
  checkUnit,
  checkUnits,
  unitDigest,
  BUCKETS
} from './assignment.js'
import {
  ArtifactCorruptError,
  ExplanationUnavailableError,
  InvalidInputError,
  RequestRejectedError
} from './errors.js'
import {HOLDOUT, LIVE, place} from './holdout.js'
import {newPredictionId} from './ids.js'
import {featuresOf, ledgerRow, withShadow} from './ledger.js'
import {describe} from './sidecar.js'
import {featureMismatch} from './validate.js'

/** @import {Experiment} from './assignment.js' */
/** @import {Client} from './client.js' */
/** @import {Holdout} from './holdout.js' */
/** @import {LedgerMode, LedgerRow, Route, ShadowScore} from './ledger.js' */
/** @import {OnnxModel} from './model.js' */
/** @import {BatchOptions, PredictOptions, Served, ServedBatchPrediction, ServedRowScore} from './runtime-client.js' */
/** @import {BatchPrediction, Prediction, RowScore} from './scorer.js' */
/** @import {Values} from './validate.js' */

/**
 * @typedef FollowOptions
 * @property {string} dir
 *   Where downloaded versions are kept (`<dir>/<version>/`).
 * @property {number} [followMs=30000]
 *   How often to ask the runtime which version it serves and which experiment it follows.
 * @property {number} [threads=1]
 *
 * @typedef LedgerSink
 *   Where the rows go (the client's trainer side).
 * @property {LedgerMode} mode
 * @property {(rows: ReadonlyArray<LedgerRow>, ready: boolean) => void} record
 * @property {(row: LedgerRow) => void} complete
 *
 * @typedef Arms
 *   A followed experiment's models: control's, each candidate's (null: refused here, control
 *   serves its units), each shadow's. Swapped in whole; a call reads it once.
 * @property {Experiment} experiment
 * @property {ReadonlyArray<number>} weights
 * @property {number} controlWeight
 * @property {OnnxModel} control
 * @property {ReadonlyArray<OnnxModel | null>} candidates
 * @property {ReadonlyArray<OnnxModel>} shadows
 * @property {ReadonlyMap<string, string>} refused
 *   Version → why it is not used.
 * @property {boolean} retry
 *   Some refusal may pass on a later try (a download, not a verification, failed): try again.
 *
 * @typedef Held
 *   The followed holdout, with its frozen version's model. Swapped in whole; a call reads it once.
 * @property {Holdout} holdout
 * @property {OnnxModel} model
 *
 * @typedef Entry
 *   One scored row, as the ledger records it.
 * @property {Route} route
 * @property {OnnxModel} model
 * @property {Values} x
 * @property {number} offset
 *   The row's index in `x`.
 * @property {number} p
 * @property {string} id
 * @property {Record<string, number>} input
 *   The row as given (what the shadows score).
 * @property {number} ms
 *   How long its version took to score the row's group.
 *
 * @typedef ShadowWork
 * @property {Arms} arms
 * @property {Array<LedgerRow>} rows
 * @property {Array<Record<string, number>>} inputs
 *
 * @typedef ShadowCounts
 *   Rows given to a shadow version: scored, failed (it raised or hung), or skipped (its queue was
 *   full), as the runtime's `ml_matching_shadow_rows_total` counts them.
 * @property {number} scored
 * @property {number} failed
 * @property {number} skipped
 */

/** How long a shadow version may take over the rows it scores before it is recorded as failed. */
export const SHADOW_TIMEOUT_MS = 10_000
/** Most queued batches the shadows score in one call. */
const SHADOW_BATCHES = 64
/**
 * Most requests' rows waiting for the shadows (the runtime's SHADOW_QUEUE default): past it a
 * request's rows are recorded at once without shadow scores, `skipped`, as the runtime does. A
 * shadow slower than the requests would otherwise hold every row, its inputs and its session.
 */
export const SHADOW_QUEUE = 1_000
const SKIPPED = 'skipped: the shadow queue was full'

/** Scores with the runtime's current version (and experiment), in-process. Made by `client.followModel`. */
export class FollowingModel {
  /** @type {OnnxModel} the version the runtime serves (ACTIVE) */
  #model
  /** @type {Client} */
  #client
  /** @type {FollowOptions} */
  #options
  /** @type {{warn: (m: string) => void, info: (m: string) => void}} */
  #logger
  /** @type {LedgerSink} */
  #ledger
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer
  /** @type {Map<OnnxModel, number>} calls (and shadow work) in flight per model, so a retired one closes when idle */
  #busy = new Map()
  /** @type {Map<string, OnnxModel>} every model held: the served one, the experiment's and the holdout's */
  #loaded = new Map()
  /** @type {Arms | undefined} */
  #arms
  /** @type {Held | undefined} */
  #held
  /**
   * @type {string | undefined} the holdout refused here, with the served version then: a holdout never
   *   changes, so it is asked again only when the served version does (as the runtime does)
   */
  #holdoutRefused
  /** @type {Promise<boolean> | undefined} */
  #checking
  /** @type {Array<ShadowWork>} */
  #shadowQueue = []
  #shadowing = false
  /** @type {Map<string, ShadowCounts>} */
  #shadowCounts = new Map()
  /** @type {Map<'experiment' | 'holdout', string>} the last warning about each, told once */
  #warned = new Map()

  /**
   * @param {Client} client
   * @param {OnnxModel} model
   * @param {FollowOptions} options
   * @param {{warn: (m: string) => void, info: (m: string) => void}} logger
   * @param {LedgerSink} ledger
   */
  constructor(client, model, options, logger, ledger) {
    this.#client = client
    this.#model = model
    this.#loaded.set(model.version, model)
    this.#options = options
    this.#logger = logger
    this.#ledger = ledger
    this.#timer = setInterval(() => void this.check(), options.followMs ?? 30_000)
    this.#timer.unref()
  }

  /** @returns {'local'} */
  get source() {
    return 'local'
  }

  /** The version the runtime serves (what scores outside an experiment). */
  get version() {
    return this.#model.version
  }

  /** The model of that version. */
  get model() {
    return this.#model
  }

  /** The experiment followed (as `GET /experiment` gave it), or null. */
  get experiment() {
    return this.#arms?.experiment ?? null
  }

  /** The long-lived holdout followed (as `GET /holdout` gave it), or null. */
  get holdout() {
    return this.#held?.holdout ?? null
  }

  /**
   * Versions of the followed experiment not used here, and why (control serves a refused
   * candidate's units; a refused shadow does not score).
   *
   * @returns {Record<string, string>}
   */
  get refused() {
    return Object.fromEntries(this.#arms?.refused ?? [])
  }

  /**
   * Rows each shadow version scored, failed to score (it raised, or took longer than
   * SHADOW_TIMEOUT_MS), and skipped (SHADOW_QUEUE requests' rows already waited for the shadows).
   *
   * @returns {Record<string, ShadowCounts>}
   */
  get shadowCounts() {
    return Object.fromEntries([...this.#shadowCounts].map(([version, counts]) => [version, {...counts}]))
  }

  /**
   * Score one row: with a `unit`, by the holdout's frozen version when the unit is held out, else by
   * its arm under a running experiment.
   *
   * @param {Record<string, number>} row
   * @param {PredictOptions} [options]
   * @returns {Promise<Prediction & Served & {predictionId: string}>}
   * @throws {import('./errors.js').InvalidInputError} a bad row, or unit key.
   */
  async predict(row, options = {}) {
    const unit = options.unit ?? undefined
    if (unit !== undefined) checkUnit(unit)
    const arms = this.#arms // one read: a swap during the call does not change its arms
    const shadows = this.#holdShadows(arms)
    let queued = false
    try {
      const [chosen, first] = this.#route(arms, this.#held, unit)
      const explain = options.explain ? {explain: true} : {}
      const live = this.#live(arms)
      const scored = await this.#score(live, chosen, [first], (m) => m.scoredOne(row, explain))
      const {answer, p, x} = scored.result
      const [route] = scored.routes
      const id = newPredictionId()
      queued = this.#record(arms, [
        {route, model: scored.model, x, offset: 0, p, id, input: row, ms: scored.ms}
      ])
      return servedOne(answer, id, route)
    } finally {
      if (!queued) for (const shadow of shadows) this.#release(shadow)
    }
  }

  /**
   * Score many rows; with `units`, each by its unit's place: the holdout's frozen version, its arm
   * under a running experiment, or the served version.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {BatchOptions} [options]
   * @returns {Promise<ServedBatchPrediction>}
   * @throws {import('./errors.js').InvalidInputError} a bad row, or unit key.
   */
  async predictBatch(rows, options = {}) {
    const units = options.units ?? undefined
    if (units !== undefined) checkUnits(units, rows)
    const explain = options.explain ? {explain: true} : {}
    const arms = this.#arms
    const held = this.#held
    const running = arms?.experiment.state === 'running' ? arms : undefined
    const shadows = this.#holdShadows(arms)
    let queued = false
    try {
      if (units !== undefined && (running !== undefined || held !== undefined)) {
        const {answer, entries} = await this.#batchByUnit(rows, units, explain, running, held)
        queued = this.#record(running, entries)
        return answer
      }
      const model = this.#live(running)
      const {result, ms} = await this.#score(model, model, [], (m) => m.scored(rows, explain))
      const {answer, p, x} = result
      const ids = rows.map(() => newPredictionId())
      queued = this.#record(
        arms,
        rows.map((input, i) => ({route: {}, model, x, offset: i, p: p[i], id: ids[i], input, ms}))
      )
      return {...answer, predictions: answer.predictions.map((score, i) => servedRow(score, ids[i]))}
    } finally {
      if (!queued) for (const shadow of shadows) this.#release(shadow)
    }
  }

  /**
   * A batch whose units are placed (by the holdout, the running experiment, or both): each row
   * names the version that served it, and its arm when it is in the experiment.
   *
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @param {ReadonlyArray<string>} units
   * @param {{explain?: boolean}} explain
   * @param {Arms | undefined} running
   * @param {Held | undefined} held
   * @returns {Promise<{answer: ServedBatchPrediction, entries: Array<Entry>}>}
   *   The answer, and the rows to record (the caller records them: it holds the shadows).
   */
  async #batchByUnit(rows, units, explain, running, held) {
    const control = this.#live(running)
    // Refused as the runtime refuses a batch: against control's feature set, naming the row.
    control.checkRows(rows)
    const routes = units.map((unit) => this.#route(running, held, unit))
    /** @type {Map<OnnxModel, Array<number>>} rows by the model serving them, in order of first use */
    const groups = new Map()
    for (const [i, [model]] of routes.entries()) {
      const group = groups.get(model)
      if (group) group.push(i)
      else groups.set(model, [i])
    }
    const ids = rows.map(() => newPredictionId())
    /** @type {Array<ServedRowScore>} */
    const predictions = new Array(rows.length)
    /** @type {Array<Entry>} */
    const entries = new Array(rows.length)
    /** @type {Map<string, {baseValue: number | null, explanationScale: string | null}>} */
    const bases = new Map() // each version's explanation base: the versions differ
    // None is closed before its turn, nor control, which may stand in for any group.
    const using = new Set([control, ...groups.keys()])
    for (const model of using) this.#acquire(model)
    try {
      for (const [chosen, group] of groups) {
        const inputs = group.map((i) => rows[i])
        const scored = await this.#score(
          control,
          chosen,
          group.map((i) => routes[i][1]),
          (m) => m.scored(inputs, explain)
        )
        const {answer, p, x} = scored.result
        const model = scored.model
        const {baseValue, explanationScale} = answer
        for (const [j, i] of group.entries()) {
          const route = scored.routes[j]
          // A held or live unit outside the experiment has no arm in the answer (as on the runtime).
          const arm = route.experiment === undefined ? undefined : route.arm
          predictions[i] = servedRow(answer.predictions[j], ids[i], arm, model.version, baseValue)
          entries[i] = {route, model, x, offset: j, p: p[j], id: ids[i], input: rows[i], ms: scored.ms}
        }
        if (baseValue !== undefined && explanationScale !== undefined)
          bases.set(model.version, {baseValue, explanationScale})
      }
    } finally {
      for (const model of using) this.#release(model)
    }
    const answer = {
      predictions,
      featureImportance: control.importance,
      modelVersion: control.version,
      ...(running === undefined ? {} : {experiment: running.experiment.id}),
      // As the runtime answers: the batch's base is control's (each explained row has its own).
      ...(bases.get(control.version) ?? [...bases.values()][0] ?? {})
    }
    return {answer, entries}
  }

  /**
   * Score with `model`; when it is an arm's own version, or the holdout's frozen one, and it raises
   * (but for a bad row, which is the caller's), `control` scores instead and the rows' routes say
   * `fallback` and why, as the runtime does: such a version never fails an answer. Control's own
   * failure is the answer's.
   *
   * @template T
   * @param {OnnxModel} control
   *   What stands in: the running experiment's control, else the served version.
   * @param {OnnxModel} model
   * @param {ReadonlyArray<Route>} routes
   *   The routes of the rows `call` scores.
   * @param {(model: OnnxModel) => Promise<T>} call
   * @returns {Promise<{result: T, model: OnnxModel, routes: ReadonlyArray<Route>, ms: number}>}
   */
  async #score(control, model, routes, call) {
    const started = performance.now()
    const own = routes[0]?.arm !== undefined && model !== control
    if (own) this.#acquire(control) // it may have to stand in
    try {
      const result = await this.#using(model, call)
      return {result, model, routes, ms: performance.now() - started}
    } catch (error) {
      // A bad row, or an explanation the version cannot give, is the caller's question, not the
      // version failing: refused as control would refuse it, never answered by control in its name.
      if (!own || error instanceof InvalidInputError || error instanceof ExplanationUnavailableError)
        throw error
      const why = `${model.version} raised ${error instanceof Error ? error.name : 'Error'}: ${describe(error)}`
      this.#logger.warn(`ml-matching: ${owner(routes[0])}: ${why.slice(0, 300)}; control served the rows`)
      const result = await this.#using(control, call)
      const fell = routes.map((route) => ({...route, fallback: true, error: why.slice(0, 200)}))
      return {result, model: control, routes: fell, ms: performance.now() - started}
    } finally {
      if (own) this.#release(control)
    }
  }

  /**
   * What stands in for a failing version, and serves units outside the experiment: the running
   * experiment's control, else the served version.
   *
   * @param {Arms | undefined} arms
   */
  #live(arms) {
    return arms?.experiment.state === 'running' ? arms.control : this.#model
  }

  /**
   * @template T
   * @param {OnnxModel} model
   * @param {(model: OnnxModel) => Promise<T>} call
   * @returns {Promise<T>}
   */
  async #using(model, call) {
    this.#acquire(model)
    try {
      return await call(model)
    } finally {
      this.#release(model)
    }
  }

  /**
   * Ask the runtime which version it serves and which experiment it follows; fetch, verify and
   * swap to what changed. Concurrent calls share one check.
   *
   * @returns {Promise<boolean>} whether the served model or the experiment changed
   */
  check() {
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined))
    return this.#checking
  }

  /** Stop following and free the models' sessions (a model still scoring is freed when it is done). */
  async close() {
    clearInterval(this.#timer)
    await this.#checking
    const models = [...this.#loaded.values()]
    this.#loaded.clear()
    this.#arms = undefined
    this.#held = undefined
    for (const model of models) if (!this.#busy.get(model)) await model.close()
  }

  async #check() {
    let changed = false
    /** @type {string | null | undefined} */
    let served
    /** @type {import('./runtime-client.js').Health | undefined} */
    let health
    try {
      health = await this.#client.health()
      served = health.modelVersion
      if (served && served !== this.#model.version) {
        const next = this.#loaded.get(served) ?? (await this.#fetch(served))
        const previous = this.#model
        this.#loaded.set(served, next)
        this.#model = next
        this.#retire()
        this.#logger.info(`ml-matching: following the runtime, ${previous.version} -> ${next.version}`)
        changed = true
      }
    } catch (error) {
      this.#logger.warn(
        `ml-matching: could not follow the runtime${served ? ` to ${served}` : ''} (${describe(error)}); ` +
          `still scoring with ${this.#model.version}`
      )
    }
    if (!health) return changed
    // The runtime's health names the experiment and the holdout it follows (the experiment with its
    // revision): GET /experiment, GET /holdout only when that changed (a runtime older than them
    // names none). The holdout last, as the runtime follows it: it must score what the served
    // version scores.
    changed = (await this.#followExperiment(health.experiment ?? null)) || changed
    return (await this.#followHoldout(health.holdout ?? null)) || changed
  }

  /**
   * @param {{id: string} | null} view
   *   The holdout the runtime's health names.
   * @returns {Promise<boolean>} whether the holdout followed changed
   */
  async #followHoldout(view) {
    if (view === null) {
      this.#holdoutRefused = undefined
      return this.#endHoldout()
    }
    const held = this.#held
    if (held?.holdout.id === view.id) {
      // A holdout never changes once created (the same id is the same holdout), but the served
      // version may have moved to other features: held units cannot send its rows to the frozen one.
      const why = this.#mismatch(held.model)
      if (!why) return false
      return this.#refuseHoldout(held.holdout, why, true)
    }
    if (this.#holdoutRefused === this.#attempt(view.id)) return false
    /** @type {Holdout | null} */
    let holdout
    try {
      holdout = await this.#client.holdout()
    } catch (error) {
      const why = `ml-matching: could not read the runtime's holdout ${view.id} (${describe(error)})`
      this.#warnOnce(why, 'holdout')
      return false
    }
    if (holdout === null) return this.#endHoldout() // it ended between the two requests
    if (this.#held?.holdout.id === holdout.id) return false
    const loaded = await this.#loadHoldout(holdout)
    if ('why' in loaded) return this.#refuseHoldout(holdout, loaded.why, loaded.final)
    this.#held = {holdout, model: loaded.model}
    this.#holdoutRefused = undefined
    this.#warned.delete('holdout')
    this.#retire()
    this.#logger.info(
      `ml-matching: holdout ${holdout.id}: ${holdout.version} serves ${holdout.weight / 100} % of the units`
    )
    return true
  }

  /**
   * The frozen version of `holdout`, downloaded and verified (or the model held of that version).
   *
   * @param {Holdout} holdout
   * @returns {Promise<{model: OnnxModel} | {why: string, final: boolean}>}
   *   `final`: a later try cannot pass (it failed verification, or scores other features).
   */
  async #loadHoldout(holdout) {
    if (holdout.hash !== HASH_VERSION) {
      const why = `it places units by hash \`${holdout.hash}\`, which this client does not implement (it implements \`${HASH_VERSION}\`): upgrade it`
      return {why, final: true}
    }
    let model = this.#loaded.get(holdout.version)
    if (!model) {
      try {
        model = await this.#fetch(holdout.version)
      } catch (error) {
        const final = error instanceof ArtifactCorruptError || error instanceof RequestRejectedError
        return {why: describe(error), final}
      }
      this.#loaded.set(holdout.version, model)
    }
    // A held unit sends the row it would send live: a version of other features cannot score it.
    const why = this.#mismatch(model)
    if (why) return {why, final: true}
    return {model}
  }

  /** @param {string} id */
  #attempt(id) {
    return `${id} ${this.#model.version}`
  }

  /**
   * Why the holdout's `model` cannot stand beside the served version (undefined: it can).
   *
   * @param {OnnxModel} model
   */
  #mismatch(model) {
    return featureMismatch(
      model.sidecar.features,
      this.#model.sidecar.features,
      `the served ${this.#model.version}`
    )
  }

  /**
   * Follow no holdout, because `holdout`'s version is refused: its units are scored live here (the
   * holdout followed before, which the runtime left, is not kept either). `final`: not asked again
   * until the served version changes (a holdout never changes), so told once.
   *
   * @param {Holdout} holdout
   * @param {string} why
   * @param {boolean} final
   * @returns {boolean} whether a holdout was followed until now
   */
  #refuseHoldout(holdout, why, final) {
    const followed = this.#held !== undefined
    this.#held = undefined
    this.#retire() // what was loaded for it
    const message =
      `ml-matching: holdout ${holdout.id} not followed in-process (its units are scored live): ` +
      `version ${holdout.version} refused: ${why}`
    if (final) {
      this.#holdoutRefused = this.#attempt(holdout.id)
      this.#logger.warn(message)
    } else this.#warnOnce(message, 'holdout')
    return followed
  }

  /** @returns {boolean} whether a holdout was followed (its units are scored live from now on) */
  #endHoldout() {
    const current = this.#held
    if (!current) return false
    this.#held = undefined
    this.#retire()
    this.#logger.info(`ml-matching: holdout ${current.holdout.id} ended; its units are scored live`)
    return true
  }

  /**
   * @param {{id: string, revision: number} | null} view
   * @returns {Promise<boolean>} whether the experiment followed changed
   */
  async #followExperiment(view) {
    const current = this.#arms
    const same = (/** @type {{id: string, revision?: number}} */ e) =>
      current !== undefined &&
      !current.retry &&
      current.experiment.id === e.id &&
      current.experiment.revision === e.revision
    if (view && same(view)) return false
    /** @type {Experiment | null} */
    let experiment = null
    if (view) {
      try {
        experiment = await this.#client.experiment()
      } catch (error) {
        this.#warnOnce(
          `ml-matching: could not read the runtime's experiment ${view.id} (${describe(error)})`,
          'experiment'
        )
        return false
      }
    }
    if (experiment && experiment.hash !== HASH_VERSION) {
      // Applied with this client's hash, its units would land in other arms than the trainer means.
      this.#warnOnce(
        `ml-matching: experiment ${experiment.id} assigns units by hash \`${experiment.hash}\`, which this ` +
          `client does not implement (it implements \`${HASH_VERSION}\`): upgrade it; not followed`,
        'experiment'
      )
      experiment = null
    }
    if (!experiment || experiment.state === 'stopped') {
      if (!current) return false
      this.#arms = undefined
      this.#retire()
      this.#logger.info(
        `ml-matching: experiment ${current.experiment.id} ended; scoring with ${this.#model.version} alone`
      )
      return true
    }
    if (same(experiment)) return false
    const arms = await this.#load(experiment)
    if (!arms) return false
    this.#arms = arms
    this.#retire()
    this.#warned.delete('experiment')
    for (const [version, why] of arms.refused) {
      this.#logger.warn(
        `ml-matching: experiment ${experiment.id}: version ${version} refused (control serves its units): ${why}`
      )
    }
    const candidates = experiment.candidates.map((c) => `${c.arm} ${c.version} at ${c.weight / 100} %`)
    this.#logger.info(
      `ml-matching: experiment ${experiment.id} (revision ${experiment.revision}, ${experiment.state}): ` +
        `control ${experiment.control}, ${candidates.join(', ') || '-'}; ` +
        `shadow ${experiment.shadow.join(', ') || 'none'}`
    )
    return true
  }

  /**
   * Every version of `experiment`, downloaded and verified (reusing those held).
   *
   * @param {Experiment} experiment
   * @returns {Promise<Arms | undefined>} undefined when control cannot be loaded: not followed
   */
  async #load(experiment) {
    /** @type {Map<string, string>} */
    const refused = new Map()
    let retry = false
    const versions = [
      ...new Set([experiment.control, ...experiment.candidates.map((c) => c.version), ...experiment.shadow])
    ]
    for (const version of versions) {
      if (this.#loaded.has(version)) continue
      try {
        this.#loaded.set(version, await this.#fetch(version))
      } catch (error) {
        refused.set(version, describe(error))
        if (!(error instanceof ArtifactCorruptError || error instanceof RequestRejectedError)) retry = true
      }
    }
    const control = this.#loaded.get(experiment.control)
    if (control) {
      // Every arm answers the same request: it must score the same features, checked alike.
      for (const version of versions) {
        const model = this.#loaded.get(version)
        const why =
          model &&
          featureMismatch(model.sidecar.features, control.sidecar.features, `control ${experiment.control}`)
        if (why) refused.set(version, why)
      }
    }
    const usable = (/** @type {string} */ version) =>
      refused.has(version) ? undefined : this.#loaded.get(version)
    if (!control) {
      this.#retire() // what was loaded for it
      this.#warnOnce(
        `ml-matching: experiment ${experiment.id} (revision ${experiment.revision}) not followed in-process: ` +
          `control ${experiment.control}: ${refused.get(experiment.control)}`,
        'experiment'
      )
      return undefined
    }
    const weights = experiment.candidates.map((c) => c.weight)
    return {
      experiment,
      weights,
      controlWeight: BUCKETS - weights.reduce((a, b) => a + b, 0),
      control,
      candidates: experiment.candidates.map((c) => usable(c.version) ?? null),
      shadows: experiment.shadow.flatMap((v) => usable(v) ?? []),
      refused,
      retry
    }
  }

  /** @param {string} version */
  #fetch(version) {
    const {dir, threads} = this.#options
    return this.#client.fetchModel({version, dir, ...(threads === undefined ? {} : {threads})})
  }

  /**
   * @param {string} message
   * @param {'experiment' | 'holdout'} about
   */
  #warnOnce(message, about) {
    if (message === this.#warned.get(about)) return
    this.#warned.set(about, message)
    this.#logger.warn(message)
  }

  /**
   * What serves a row with unit `key` (undefined: no key, so control, outside the experiment and
   * the holdout): the holdout's frozen version for a held unit, else the unit's arm under a running
   * experiment, else the served version (the holdout's `live` side).
   *
   * @param {Arms | undefined} arms
   * @param {Held | undefined} held
   * @param {string | undefined} key
   * @returns {[OnnxModel, Route]}
   */
  #route(arms, held, key) {
    const running = arms?.experiment.state === 'running' ? arms : undefined
    if (key === undefined || held === undefined) {
      if (running === undefined) return [this.#model, {}]
      return key === undefined ? [running.control, {}] : armRoute(running, key)
    }
    const {holdout, model} = held
    const {held: inside, unit} = place(holdout, key)
    const id = holdout.id
    if (inside) return [model, {arm: HOLDOUT, weight: holdout.weight, unit, holdout: id}]
    if (running !== undefined) return armRoute(running, key, id)
    return [this.#model, {arm: LIVE, weight: BUCKETS - holdout.weight, unit, holdout: id}]
  }

  /**
   * The ledger rows of scored rows, queued before the answer returns (never throws: a row that
   * cannot be recorded is told, the answer stands). Rows under an experiment with shadows wait for
   * the shadows' scores before they are sent.
   *
   * @param {Arms | undefined} arms
   * @param {ReadonlyArray<Entry>} entries
   * @returns {boolean} whether shadow work was queued (it releases the shadows the request holds)
   */
  #record(arms, entries) {
    const mode = this.#ledger.mode
    if (mode === 'off') return false
    try {
      // Under the holdout every keyed row is kept, on either side: the trainer compares the sides.
      const keep =
        mode === 'all'
          ? entries
          : entries.filter((e) => e.route.experiment !== undefined || e.route.holdout !== undefined)
      if (keep.length === 0) return false
      const at = new Date().toISOString()
      const shadows = arms?.shadows.length ? arms : undefined
      /** @type {Array<LedgerRow>} */
      const plain = []
      /** @type {Array<LedgerRow>} rows waiting for their shadows' scores */
      const shadowed = []
      /** @type {Array<Record<string, number>>} */
      const inputs = []
      for (const e of keep) {
        const names = e.model.features
        const features = featuresOf(names, e.x, e.offset * names.length)
        const row = ledgerRow(e.id, at, e.model.version, e.p, features, e.route, e.ms)
        if (shadows && e.route.experiment !== undefined) {
          shadowed.push(row)
          inputs.push({...e.input}) // scored after the answer: the caller may reuse its object by then
        } else plain.push(row)
      }
      if (plain.length > 0) this.#ledger.record(plain, true)
      if (shadows && shadowed.length > 0) {
        this.#ledger.record(shadowed, false)
        this.#queueShadows({arms: shadows, rows: shadowed, inputs})
        return true
      }
    } catch (error) {
      this.#logger.warn(`ml-matching: prediction-ledger rows not recorded: ${describe(error)}`)
    }
    return false
  }

  /**
   * Hold `arms`' shadow versions for one request, from the moment it reads the arms: a check that
   * lets the experiment go meanwhile retires them, and closes at once a version nobody holds, so the
   * request's shadow work, queued after its answer, would find them closed. Released when that work
   * is done, or by the request when it queues none.
   *
   * @param {Arms | undefined} arms
   * @returns {ReadonlyArray<OnnxModel>}
   */
  #holdShadows(arms) {
    const shadows = arms?.shadows ?? []
    for (const shadow of shadows) this.#acquire(shadow)
    return shadows
  }

  /** @param {ShadowWork} work the rows of one request, whose shadows it holds (see #holdShadows) */
  #queueShadows(work) {
    if (this.#shadowQueue.length >= SHADOW_QUEUE) {
      for (const shadow of work.arms.shadows) {
        this.#shadowCount(shadow.version).skipped += work.rows.length
        this.#release(shadow)
      }
      const skipped = work.arms.shadows.map((shadow) => ({version: shadow.version, error: SKIPPED}))
      for (const row of work.rows) this.#ledger.complete(withShadow(row, skipped))
      return
    }
    this.#shadowQueue.push(work)
    if (this.#shadowing) return
    this.#shadowing = true
    setImmediate(() => void this.#runShadows()) // after the answer has returned
  }

  async #runShadows() {
    try {
      while (this.#shadowQueue.length > 0) {
        const arms = this.#shadowQueue[0].arms
        let n = 1
        while (n < this.#shadowQueue.length && n < SHADOW_BATCHES && this.#shadowQueue[n].arms === arms) n++
        const work = this.#shadowQueue.splice(0, n)
        try {
          await this.#scoreShadows(
            arms,
            work.flatMap((w) => w.rows),
            work.flatMap((w) => w.inputs)
          )
        } finally {
          for (const _ of work) for (const shadow of arms.shadows) this.#release(shadow)
        }
      }
    } finally {
      this.#shadowing = false
    }
  }

  /**
   * @param {Arms} arms
   * @param {Array<LedgerRow>} rows
   * @param {Array<Record<string, number>>} inputs
   */
  async #scoreShadows(arms, rows, inputs) {
    /** @type {Array<Array<ShadowScore>>} */
    const scores = rows.map(() => [])
    for (const shadow of arms.shadows) {
      const counts = this.#shadowCount(shadow.version)
      try {
        const p = await deadline(shadow.probabilities(inputs), SHADOW_TIMEOUT_MS)
        for (const [i, s] of scores.entries()) s.push({version: shadow.version, probability: p[i]})
        counts.scored += rows.length
      } catch (error) {
        // A shadow's failure is its own: recorded on the rows and counted, never the answer's.
        const text = `${error instanceof Error ? error.name : 'Error'}: ${describe(error)}`.slice(0, 200)
        for (const s of scores) s.push({version: shadow.version, error: text})
        counts.failed += rows.length
      }
    }
    for (const [i, row] of rows.entries()) this.#ledger.complete(withShadow(row, scores[i]))
  }

  /**
   * @param {string} version
   * @returns {ShadowCounts}
   */
  #shadowCount(version) {
    const counts = this.#shadowCounts.get(version) ?? {scored: 0, failed: 0, skipped: 0}
    this.#shadowCounts.set(version, counts)
    return counts
  }

  /** @param {OnnxModel} model */
  #acquire(model) {
    this.#busy.set(model, (this.#busy.get(model) ?? 0) + 1)
  }

  /** @param {OnnxModel} model */
  #release(model) {
    const left = (this.#busy.get(model) ?? 1) - 1
    if (left > 0) {
      this.#busy.set(model, left)
      return
    }
    this.#busy.delete(model)
    if (this.#loaded.get(model.version) !== model) this.#close(model)
  }

  /** Let go of every model neither served, nor in the experiment or the holdout: closed now, or when idle. */
  #retire() {
    const kept = new Set([this.#model])
    const arms = this.#arms
    if (arms) {
      kept.add(arms.control)
      for (const model of arms.candidates) if (model) kept.add(model)
      for (const model of arms.shadows) kept.add(model)
    }
    if (this.#held) kept.add(this.#held.model)
    for (const [version, model] of this.#loaded) {
      if (kept.has(model)) continue
      this.#loaded.delete(version)
      if (!this.#busy.get(model)) this.#close(model)
    }
  }

  /**
   * Close a version let go of; a failure is logged, never left unhandled (Node ends the process on
   * an unhandled rejection).
   *
   * @param {OnnxModel} model
   */
  #close(model) {
    model.close().catch((error) => {
      this.#logger.warn(`ml-matching: closing version ${model.version} failed: ${describe(error)}`)
    })
  }
}

/**
 * The route of unit `key` under a running experiment: its arm, and the version that serves it
 * (control, for a candidate refused here).
 *
 * @param {Arms} arms
 * @param {string} key
 * @param {string} [holdout]
 *   The holdout that placed the unit on the live side, when one is followed.
 * @returns {[OnnxModel, Route]}
 */
function armRoute(arms, key, holdout) {
  const exp = arms.experiment
  const unit = unitDigest(exp.salt, key)
  const k = armIndex(bucketOf(unit), arms.weights)
  const base = {experiment: exp.id, revision: exp.revision ?? 1, unit, ...(holdout ? {holdout} : {})}
  if (k < 0) return [arms.control, {...base, arm: CONTROL, weight: arms.controlWeight}]
  const {arm, version, weight} = exp.candidates[k]
  const model = arms.candidates[k]
  if (model) return [model, {...base, arm, weight}]
  const error = `version ${version} refused: ${arms.refused.get(version) ?? ''}`.slice(0, 200)
  return [arms.control, {...base, arm, weight, fallback: true, error}]
}

/**
 * Whose version a route's is, for a log line: `experiment <id>` or `holdout <id>`.
 *
 * @param {Route | undefined} route
 */
function owner(route) {
  return route?.experiment !== undefined ? `experiment ${route.experiment}` : `holdout ${route?.holdout}`
}

/**
 * `predict`'s answer as the runtime gives it: the id, and the experiment and arm, after the version.
 *
 * @param {Prediction} answer
 * @param {string} predictionId
 * @param {Route} route
 * @returns {Prediction & Served & {predictionId: string}}
 */
function servedOne(answer, predictionId, route) {
  const {contributions, baseValue, explanationScale, ...plain} = answer
  return {
    ...plain,
    predictionId,
    ...(route.experiment === undefined ? {} : {experiment: route.experiment, arm: route.arm ?? null}),
    ...(contributions === undefined ? {} : {contributions, baseValue, explanationScale})
  }
}

/**
 * One row of a batch as the runtime gives it: the id; with placed units the version that served it
 * (and the arm, in the experiment), and, explained, the base its contributions start from.
 *
 * @param {RowScore} score
 * @param {string} predictionId
 * @param {string} [arm]
 * @param {string} [version]
 * @param {number | null} [baseValue]
 * @returns {ServedRowScore}
 */
function servedRow(score, predictionId, arm, version, baseValue) {
  const {contributions, ...plain} = score
  const row = {
    ...plain,
    predictionId,
    ...(arm === undefined ? {} : {arm}),
    ...(version === undefined ? {} : {modelVersion: version})
  }
  if (contributions === undefined) return row
  return version === undefined || baseValue === undefined
    ? {...row, contributions}
    : {...row, contributions, baseValue}
}

/**
 * `promise`, or a rejection (`TimeoutError`) once `ms` have passed.
 *
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @returns {Promise<T>}
 */
function deadline(promise, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`no answer within ${ms} ms`)
      error.name = 'TimeoutError'
      reject(error)
    }, ms)
    timer.unref()
  })
  return /** @type {Promise<T>} */ (Promise.race([promise, late])).finally(() => clearTimeout(timer))
}
