/**
 * A local model that follows the version a runtime serves: every `followMs` it asks the runtime,
 * and when another version serves there, downloads it, verifies it (sha256, signature, golden
 * rows) and swaps. On any failure the model it has keeps scoring and the next check tries again.
 */

import {describe} from './sidecar.js'

/** @import {Client} from './client.js' */
/** @import {OnnxModel} from './model.js' */
/** @import {BatchPrediction, Prediction} from './scorer.js' */

/**
 * @typedef FollowOptions
 * @property {string} dir
 *   Where downloaded versions are kept (`<dir>/<version>/`).
 * @property {number} [followMs=30000]
 *   How often to ask the runtime which version it serves.
 * @property {number} [threads=1]
 */

/** Scores with the runtime's current version, in-process. Made by `client.followModel`. */
export class FollowingModel {
  /** @type {OnnxModel} */
  #model
  /** @type {Client} */
  #client
  /** @type {FollowOptions} */
  #options
  /** @type {{warn: (m: string) => void, info: (m: string) => void}} */
  #logger
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer
  /** @type {Map<OnnxModel, number>} calls in flight per model, so a replaced one closes when idle */
  #busy = new Map()
  /** @type {Promise<boolean> | undefined} */
  #checking

  /**
   * @param {Client} client
   * @param {OnnxModel} model
   * @param {FollowOptions} options
   * @param {{warn: (m: string) => void, info: (m: string) => void}} logger
   */
  constructor(client, model, options, logger) {
    this.#client = client
    this.#model = model
    this.#options = options
    this.#logger = logger
    this.#timer = setInterval(() => void this.check(), options.followMs ?? 30_000)
    this.#timer.unref()
  }

  /** @returns {'local'} */
  get source() {
    return 'local'
  }

  /** The version scoring now. */
  get version() {
    return this.#model.version
  }

  /** The model scoring now. */
  get model() {
    return this.#model
  }

  /**
   * @param {Record<string, number>} row
   * @returns {Promise<Prediction>}
   */
  predict(row) {
    return this.#use((model) => model.predict(row))
  }

  /**
   * @param {ReadonlyArray<Record<string, number>>} rows
   * @returns {Promise<BatchPrediction>}
   */
  predictBatch(rows) {
    return this.#use((model) => model.predictBatch(rows))
  }

  /**
   * Ask the runtime which version it serves; fetch, verify and swap to it if it is another.
   * Concurrent calls share one check.
   *
   * @returns {Promise<boolean>} whether the model changed
   */
  check() {
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined))
    return this.#checking
  }

  /** Stop following and free the model's session. */
  async close() {
    clearInterval(this.#timer)
    await this.#checking
    await this.#model.close()
  }

  async #check() {
    let served
    try {
      served = (await this.#client.health()).modelVersion
      if (!served || served === this.#model.version) return false
      const next = await this.#client.fetchModel({
        version: served,
        dir: this.#options.dir,
        ...(this.#options.threads === undefined ? {} : {threads: this.#options.threads})
      })
      const previous = this.#model
      this.#model = next
      this.#retire(previous)
      this.#logger.info(`ml-matching: following the runtime, ${previous.version} -> ${next.version}`)
      return true
    } catch (error) {
      this.#logger.warn(
        `ml-matching: could not follow the runtime${served ? ` to ${served}` : ''} (${describe(error)}); ` +
          `still scoring with ${this.#model.version}`
      )
      return false
    }
  }

  /**
   * @template T
   * @param {(model: OnnxModel) => Promise<T>} call
   * @returns {Promise<T>}
   */
  async #use(call) {
    const model = this.#model // one read: a swap during the call does not change its model
    this.#busy.set(model, (this.#busy.get(model) ?? 0) + 1)
    try {
      return await call(model)
    } finally {
      const left = /** @type {number} */ (this.#busy.get(model)) - 1
      if (left > 0 || model === this.#model) this.#busy.set(model, left)
      else {
        this.#busy.delete(model)
        if (model !== this.#model) await model.close()
      }
    }
  }

  /** @param {OnnxModel} model */
  #retire(model) {
    if (!this.#busy.get(model)) void model.close()
  }
}
