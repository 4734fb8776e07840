/**
 * What waits for the trainer: outcomes (`Outbox`) and prediction-ledger rows (`LedgerQueue`), each a
 * bounded in-memory queue, both mirrored to one JSON Lines file when one is given (`SpoolFile`), so
 * a Node restart loses nothing that was queued.
 *
 * Each item keeps the id it was first sent with (an outcome's `id` or `predictionId`, a row's
 * `predictionId`): a resend of one the trainer already stored (its answer was lost) is counted
 * there as a duplicate, never stored twice. The file is appended to as items queue, and rewritten
 * (to a temporary file, then renamed) once some are delivered: at once for outcomes; for ledger
 * rows, which flow all the time, once the lines delivered outnumber those waiting (a row delivered
 * but still in the file is resent after a restart, which is harmless).
 */

import {closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync} from 'node:fs'
import {OutcomeQueueFullError, SettingsError} from './errors.js'

/**
 * @typedef {{id: string, features: Record<string, number>, outcome: boolean}} FeatureOutcome
 *   An outcome with its features.
 * @typedef {{predictionId: string, outcome: boolean}} PredictionOutcome
 *   An outcome of a prediction the trainer's ledger holds (or will: it waits there for its row).
 * @typedef {FeatureOutcome | PredictionOutcome} PendingOutcome
 *
 * @typedef QueuedRow
 *   A ledger row waiting for the trainer.
 * @property {string} id
 *   Its `predictionId`.
 * @property {string} json
 *   The row as sent.
 * @property {boolean} ready
 *   False while its shadow versions still score it: it is not sent before they have.
 */

/**
 * The id an outcome is known by: its own, or its prediction's.
 *
 * @param {PendingOutcome} item
 */
export function outcomeKey(item) {
  return 'id' in item ? item.id : item.predictionId
}

/** The JSON Lines file both queues are mirrored to. */
export class SpoolFile {
  /** @type {string | undefined} */
  #path
  /** @type {number | undefined} */
  #fd
  /** @type {Array<() => Iterable<string>>} each queue's lines, for a rewrite */
  #lanes = []
  /** The file ends in a line cut short by a crash: the next append starts a line of its own. */
  #cut = false
  /** @type {Array<any>} the lines read at opening that no queue has taken yet (see take) */
  #initial

  /**
   * @param {string | undefined} path
   *   Without one, nothing is written (and nothing survives a restart).
   */
  constructor(path) {
    this.#path = path
    if (path) {
      try {
        // Opened now: a folder that is missing or not writable refuses the client, not the first
        // outcome of an outage (which was then neither sent nor queued).
        this.#fd = openSync(path, 'a')
      } catch (error) {
        throw new SettingsError(
          `spoolFile ${path}: cannot append to it (${/** @type {Error} */ (error).message})`
        )
      }
    }
    const text = path ? readText(path) : ''
    this.#initial = parseLines(text)
    this.#cut = text.length > 0 && !text.endsWith('\n')
  }

  /**
   * The lines the file held when it was opened, parsed, that `isMine` picks (a line cut short by a
   * crash is skipped: it was never acknowledged as queued). Handed over once: after a long outage
   * they may be a hundred thousand rows, which the queue that takes them keeps in its own form.
   *
   * @param {(line: any) => boolean} isMine
   * @returns {Array<any>}
   */
  take(isMine) {
    const mine = this.#initial.filter(isMine)
    this.#initial = this.#initial.filter((line) => !isMine(line))
    return mine
  }

  /** @param {() => Iterable<string>} lines a queue's current lines */
  attach(lines) {
    this.#lanes.push(lines)
  }

  /**
   * @param {string} line ending with a newline
   * @param {boolean} [durable] on disk before it returns (fsync), not only in the kernel's cache: an
   *   outcome reported `queued` survives a power cut too. Ledger rows, which flow all the time and
   *   would pay a disk flush each, survive a restart of the process, not of the machine.
   */
  append(line, durable = false) {
    if (!this.#path) return
    this.#fd ??= openSync(this.#path, 'a')
    const text = this.#cut ? `\n${line}` : line // glued to a cut line, it would be lost with it
    this.#cut = true // until the whole line is written: a write that fails partway cuts it too
    writeAll(this.#fd, text)
    this.#cut = false
    if (durable) fsyncSync(this.#fd)
  }

  /** Write what waits now, and nothing else. */
  rewrite() {
    if (!this.#path) return
    const tmp = `${this.#path}.tmp-${process.pid}`
    let text = ''
    for (const lines of this.#lanes) for (const line of lines()) text += line
    const fd = openSync(tmp, 'w')
    try {
      writeAll(fd, text)
      fsyncSync(fd) // on disk before the rename, or a power cut could leave an empty spool
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.#path)
    if (this.#fd !== undefined) closeSync(this.#fd)
    this.#fd = undefined
    this.#cut = false
  }
}

/** Outcomes waiting for the trainer, oldest first. */
export class Outbox {
  /** @type {Array<PendingOutcome>} */
  #items
  /** @type {SpoolFile} */
  #spool
  /** @type {number} */
  #limit

  /**
   * @param {number} limit
   * @param {SpoolFile} spool
   *   The outcomes a previous process left in it are queued again.
   */
  constructor(limit, spool) {
    this.#limit = limit
    this.#spool = spool
    this.#items = spool.take((item) => !('prediction' in item))
    spool.attach(() => this.#items.map((item) => JSON.stringify(item) + '\n'))
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
          `outcome ${outcomeKey(item)} was not queued`
      )
    }
    this.#spool.append(JSON.stringify(item) + '\n', true) // only while the trainer is away
    this.#items.push(item)
  }

  /**
   * Forget the first `count` outcomes (delivered, or refused by the trainer).
   *
   * @param {number} count
   */
  drop(count) {
    this.#items = this.#items.slice(count)
    this.#spool.rewrite()
  }
}

/** Prediction-ledger rows waiting for the trainer (`POST /predictions`). */
export class LedgerQueue {
  /** @type {Map<string, QueuedRow>} oldest first */
  #rows = new Map()
  /** @type {SpoolFile} */
  #spool
  /** @type {number} */
  #limit
  /** Lines of the file that no longer wait (delivered, or replaced by a later line). */
  #stale = 0
  /** @type {Array<{ids: Set<string>, resolve: () => void}>} told when these rows have their shadow scores */
  #settled = []

  /**
   * @param {number} limit
   * @param {SpoolFile} spool
   *   The rows a previous process left in it are queued again, ready (a row whose shadows had not
   *   scored it goes without them).
   */
  constructor(limit, spool) {
    this.#limit = limit
    this.#spool = spool
    for (const line of spool.take((item) => 'prediction' in item)) {
      const row = line.prediction
      if (this.#rows.has(row.predictionId)) this.#stale++
      this.#rows.set(row.predictionId, {id: row.predictionId, json: JSON.stringify(row), ready: true})
    }
    spool.attach(() => [...this.#rows.values()].map((row) => `{"prediction":${row.json}}\n`))
  }

  /** How many rows wait. */
  get size() {
    return this.#rows.size
  }

  /**
   * Queue a row (written to the spool file before this returns).
   *
   * @param {{predictionId: string}} row
   * @param {boolean} ready
   *   False while shadow versions still score it: `complete` makes it ready.
   * @returns {boolean} false when `limit` rows already wait: the row is not queued
   */
  add(row, ready) {
    if (this.#rows.size >= this.#limit) return false
    const json = JSON.stringify(row)
    this.#spool.append(`{"prediction":${json}}\n`)
    this.#rows.set(row.predictionId, {id: row.predictionId, json, ready})
    return true
  }

  /**
   * Resolves once every row queued now that waits for its shadow scores has them (at once when
   * none does). Rows queued later are not waited for: under steady traffic some row always waits,
   * and a flush at shutdown would never start.
   *
   * @returns {Promise<void>}
   */
  settled() {
    const ids = new Set([...this.#rows.values()].filter((row) => !row.ready).map((row) => row.id))
    if (ids.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#settled.push({ids, resolve}))
  }

  /**
   * Replace a row that waited for its shadow scores with the row that has them, ready to send.
   *
   * @param {{predictionId: string}} row
   */
  complete(row) {
    const queued = this.#rows.get(row.predictionId)
    if (!queued || queued.ready) return
    queued.json = JSON.stringify(row)
    queued.ready = true
    for (const waiting of this.#settled) waiting.ids.delete(queued.id)
    for (const done of this.#settled.filter((waiting) => waiting.ids.size === 0)) done.resolve()
    this.#settled = this.#settled.filter((waiting) => waiting.ids.size > 0)
    this.#spool.append(`{"prediction":${queued.json}}\n`)
    this.#stale++
  }

  /**
   * @param {number} max
   * @returns {Array<QueuedRow>} up to `max` rows ready to send, the oldest first
   */
  ready(max) {
    const out = []
    for (const row of this.#rows.values()) {
      if (!row.ready) continue
      out.push(row)
      if (out.length === max) break
    }
    return out
  }

  /**
   * Forget rows (delivered, or refused by the trainer).
   *
   * @param {ReadonlyArray<QueuedRow>} rows
   */
  remove(rows) {
    for (const row of rows) if (this.#rows.delete(row.id)) this.#stale++
    if (this.#rows.size === 0 || this.#stale >= Math.max(1000, this.#rows.size)) {
      this.#spool.rewrite()
      this.#stale = 0
    }
  }
}

/**
 * Every byte of `text`: `writeSync` may write fewer than asked.
 *
 * @param {number} fd
 * @param {string} text
 */
function writeAll(fd, text) {
  const bytes = Buffer.from(text)
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done)
}

/**
 * @param {string} file
 * @returns {string} '' when there is no such file
 */
function readText(file) {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    if (/** @type {{code?: string}} */ (error).code === 'ENOENT') return ''
    throw error
  }
}

/**
 * @param {string} text
 * @returns {Array<any>}
 */
function parseLines(text) {
  /** @type {Array<any>} */
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
