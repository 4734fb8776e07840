/**
 * Outcomes waiting for the trainer: a bounded in-memory queue, mirrored to a JSON Lines file when
 * one is given, so a Node restart loses nothing.
 *
 * Each outcome keeps the id it was first sent with: a resend of one the trainer already stored
 * (its answer was lost) is counted as a duplicate there, never stored twice. The file is appended
 * to as outcomes queue, and rewritten (to a temporary file, then renamed) once some are delivered.
 */

import {appendFileSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {OutcomeQueueFullError} from './errors.js'

/**
 * @typedef PendingOutcome
 * @property {string} id
 * @property {Record<string, number>} features
 * @property {boolean} outcome
 */

export class Outbox {
  /** @type {Array<PendingOutcome>} */
  #items = []
  /** @type {string | undefined} */
  #file
  /** @type {number} */
  #limit

  /**
   * @param {number} limit
   * @param {string | undefined} file
   *   JSON Lines; the outcomes a previous process left in it are queued again.
   */
  constructor(limit, file) {
    this.#limit = limit
    this.#file = file
    if (file) this.#items = readSpool(file)
  }

  get size() {
    return this.#items.length
  }

  /** @returns {ReadonlyArray<PendingOutcome>} the oldest first */
  peek() {
    return this.#items
  }

  /**
   * @param {PendingOutcome} item
   * @throws {OutcomeQueueFullError} when `limit` outcomes already wait
   */
  add(item) {
    if (this.#items.length >= this.#limit) {
      throw new OutcomeQueueFullError(
        `${this.#items.length} outcomes already wait for the trainer (queueLimit ${this.#limit}); ` +
          `outcome ${item.id} was not queued`
      )
    }
    if (this.#file) appendFileSync(this.#file, JSON.stringify(item) + '\n')
    this.#items.push(item)
  }

  /**
   * Forget the first `count` outcomes (delivered, or refused by the trainer).
   *
   * @param {number} count
   */
  drop(count) {
    this.#items = this.#items.slice(count)
    if (!this.#file) return
    const tmp = `${this.#file}.tmp-${process.pid}`
    writeFileSync(tmp, this.#items.map((item) => JSON.stringify(item) + '\n').join(''))
    renameSync(tmp, this.#file)
  }
}

/**
 * @param {string} file
 * @returns {Array<PendingOutcome>}
 */
function readSpool(file) {
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if (/** @type {{code?: string}} */ (error).code === 'ENOENT') return []
    throw error
  }
  /** @type {Array<PendingOutcome>} */
  const items = []
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    try {
      items.push(JSON.parse(line))
    } catch {
      // A line cut short by a crash mid-append was never acknowledged to the caller as queued.
    }
  }
  return items
}
