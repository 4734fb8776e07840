/**
 * Every code example of README.md runs here, as written, and what its comments show is checked.
 *
 * Each ```js block becomes a module: a prelude giving it the names it assumes from earlier blocks
 * (`row`, `rows`, `model`, `client`, …), then the block itself, unchanged, then an export of the
 * names checked. It imports `ml-matching-client` by its name (the module is written inside the
 * package), runs in a fresh working folder, and its hosts (`http://ml-matching:8000`,
 * `http://ml-matching-trainer:8001`, `http://localhost:8000`) reach the fake runtime and trainer
 * of test/support.js, which answer as the real ones do. `console` is captured.
 *
 * A comment showing a result (`// {score: 84.3345…, …}`) is read and held against the value: see
 * `assertShown`. The blocks that only name requests (`// GET /health`) are held against the
 * requests the fake runtime saw.
 */

import assert from 'node:assert/strict'
import {cp, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'
import {fileURLToPath, pathToFileURL} from 'node:url'
import * as api from '../index.js'
import {
  ADMIN_TOKEN,
  EXAMPLE_ROW,
  FakeRuntime,
  FakeTrainer,
  GB,
  RF,
  STORE,
  copyVersion,
  exchange,
  experimentOf,
  rowsOf,
  sidecarOf,
  tempDir,
  versionDir
} from './support.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const README = path.join(here, '../README.md')
/** Where the prelude finds the values it hands to a block. */
const CONTEXT = Symbol.for('ml-matching-client README')

/**
 * @typedef Block
 * @property {string} key
 *   The section's heading, plus ` #n` for the n-th block of a section after the first.
 * @property {string} lang
 * @property {string} body
 * @property {string | undefined} marker
 *   The HTML comment right above it (e.g. `newcomer: save quickstart.mjs`).
 *
 * @typedef Run
 *   How to run one block.
 * @property {(context: Context) => Promise<Record<string, unknown>>} [given]
 *   The names the block assumes, with their values.
 * @property {ReadonlyArray<string>} [imports]
 *   Names of the package the block uses without importing them (an earlier block did).
 * @property {ReadonlyArray<string>} exports
 *   Names the block declares that the check reads.
 * @property {Record<string, string | undefined>} [env]
 * @property {(context: Context) => Promise<void>} [setup]
 *   Prepares the fakes and the working folder (the current directory by then).
 * @property {(scope: Record<string, any>, block: Block, context: Context) => Promise<void>} check
 *
 * @typedef Context
 * @property {FakeRuntime} runtime
 * @property {FakeTrainer} trainer
 * @property {ReturnType<typeof capture>} printed
 *   What the block printed, and the `console` that keeps it.
 * @property {Array<() => Promise<unknown>>} cleanup
 */

/**
 * The fenced blocks of a Markdown text, keyed by their section.
 *
 * @param {string} text
 * @returns {Array<Block>}
 */
function blocks(text) {
  const fence = /(?:<!--\s*(.*?)\s*-->\n)?```(\w*)[^\n]*\n([\s\S]*?)\n```/g
  /** @type {Array<Block>} */
  const found = []
  /** @type {Map<string, number>} */
  const seen = new Map()
  // Headings are read where no code is: a `#` line of a shell block is no heading.
  const prose = text.replace(/```[\s\S]*?```/g, (code) => code.replace(/[^\n]/g, ' '))
  for (const match of text.matchAll(fence)) {
    const before = prose.slice(0, match.index)
    const heading = [...before.matchAll(/^#+ (.+)$/gm)].at(-1)?.[1] ?? '(top)'
    const n = (seen.get(heading) ?? 0) + 1
    seen.set(heading, n)
    found.push({
      key: n === 1 ? heading : `${heading} #${n}`,
      lang: match[2],
      body: match[3],
      marker: match[1]
    })
  }
  return found
}

/**
 * The comment on the line of `block` that starts with `code`, with the comment lines right after it.
 *
 * @param {Block} block
 * @param {string} code
 */
function commentAfter(block, code) {
  const lines = block.body.split('\n')
  const at = lines.findIndex((line) => line.startsWith(code))
  assert.ok(at >= 0, `${block.key}: no line starts with ${JSON.stringify(code)}`)
  const own = lines[at].match(/(?:^|\s)\/\/(.*)$/)?.[1] ?? '' // not the // of a URL
  const next = []
  for (const line of lines.slice(at + 1)) {
    if (!line.trim().startsWith('//')) break
    next.push(line.trim().slice(2))
  }
  return [own, ...next].join(' ')
}

// ---------------------------------------------------------------------------------------------
// What a comment shows

/**
 * @typedef {{kind: 'object', keys: Array<[string, Shape | undefined]>, open: boolean}
 *   | {kind: 'array', item: Shape}
 *   | {kind: 'one of', values: Array<string>}} Shape
 *   `one of`: literals as written (`'x'`, `84.3345…`, `null`).
 */

const TOKEN =
  /\s*(\.\.\.[A-Za-z_$][\w$]*|…|[{}[\],:|]|'[^']*'|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?…?|[A-Za-z_$][\w$]*)/y

/**
 * Parse the first `{…}` of a comment: `{a, b: 'x' | 'y', c: 84.33…, d: {e, …}, f: [{…}, …], ...spread}`.
 *
 * @param {string} text
 * @returns {Shape}
 */
function parseShown(text) {
  let at = text.indexOf('{')
  assert.ok(at >= 0, `no {…} in the comment ${JSON.stringify(text)}`)
  const next = () => {
    TOKEN.lastIndex = at
    const match = TOKEN.exec(text)
    if (!match) throw new Error(`cannot read the comment at ${JSON.stringify(text.slice(at, at + 20))}`)
    at = TOKEN.lastIndex
    return match[1]
  }
  const peek = () => {
    const saved = at
    const token = next()
    at = saved
    return token
  }
  /** @returns {Shape} */
  const value = () => {
    const token = next()
    if (token === '{') {
      /** @type {Shape} */
      const shape = {kind: 'object', keys: [], open: false}
      for (let item = next(); item !== '}'; item = next()) {
        if (item === ',') continue
        if (item === '…' || item.startsWith('...')) shape.open = true
        else if (peek() === ':') {
          next()
          shape.keys.push([item, value()])
        } else shape.keys.push([item, undefined])
      }
      return shape
    }
    if (token === '[') {
      const item = value()
      while (next() !== ']'); // past the `, …` that says there are more
      return {kind: 'array', item}
    }
    const values = [token]
    while (peek() === '|') {
      next()
      values.push(next())
    }
    return {kind: 'one of', values}
  }
  return value()
}

/**
 * Assert that `value` is what a README comment shows: a key listed is there; a value shown
 * matches (`84.3345…`: a number whose digits start so; `'a' | 'b'`: one of these); an object shown
 * without `…` or `...spread` has exactly the keys listed, in the order listed.
 *
 * @param {unknown} value
 * @param {string} comment
 * @param {string} where
 */
function assertShown(value, comment, where) {
  check(value, parseShown(comment), where)

  /**
   * @param {unknown} actual
   * @param {Shape} shape
   * @param {string} at
   */
  function check(actual, shape, at) {
    if (shape.kind === 'object') {
      assert.ok(typeof actual === 'object' && actual !== null && !Array.isArray(actual), `${at}: an object`)
      const keys = Object.keys(actual)
      const listed = shape.keys.map(([key]) => key)
      if (!shape.open) assert.deepEqual(keys, listed, `${at}: its keys, in order`)
      for (const [key, inner] of shape.keys) {
        assert.ok(keys.includes(key), `${at}.${key}: missing`)
        if (inner) check(/** @type {Record<string, unknown>} */ (actual)[key], inner, `${at}.${key}`)
      }
    } else if (shape.kind === 'array') {
      assert.ok(Array.isArray(actual) && actual.length > 0, `${at}: a non-empty array`)
      actual.forEach((item, i) => check(item, shape.item, `${at}[${i}]`))
    } else {
      const ok = shape.values.some((literal) => {
        if (literal.startsWith("'")) return actual === literal.slice(1, -1)
        if (literal.endsWith('…'))
          return typeof actual === 'number' && String(actual).startsWith(literal.slice(0, -1))
        return JSON.stringify(actual) === literal
      })
      assert.ok(ok, `${at}: ${JSON.stringify(actual)}, the comment shows ${shape.values.join(' | ')}`)
    }
  }
}

/**
 * The requests a block's comments name (`GET /health`, `POST /models/{version}/load`), in order,
 * as one pattern of the requests a service saw: `{version}` any version, `…` anything, and a
 * request named with `…` (one per file) may come several times in a row.
 *
 * @param {Block} block
 */
function namedRequests(block) {
  const named = [...block.body.matchAll(/(?:^|\s)\/\/.*$/gm)].flatMap((line) => [
    ...line[0].matchAll(/\b(GET|POST) (\/[^\s:,;)]*)/g)
  ])
  const parts = named.map(([, method, where]) => {
    const pattern = `${method} ${where}`
      .replace(/[.*+?^$()[\]\\]/g, '\\$&')
      .replaceAll('{version}', '[^/]+')
      .replaceAll('…', '[^\\n]+')
    return where.includes('…') ? `(?:${pattern}\\n)+` : `${pattern}\\n`
  })
  return {named: named.map(([text]) => text), pattern: new RegExp(`^${parts.join('')}$`)}
}

// ---------------------------------------------------------------------------------------------
// How each block runs, and what is checked

/** @type {Record<string, Run | string>} */
const RUNS = {
  'Quick start': {
    env: {ML_SERVICE_URL: undefined},
    exports: ['local', 'remote', 'batch'],
    async check({local, remote, batch}, block, context) {
      // console.log(model.version, local.score, remote.score, remote.source) // the same score twice, 'remote'
      const printed = context.printed.log
      assert.deepEqual(printed[0], [RF, local.score, local.score, 'remote'])
      assert.equal(remote.source, 'remote')
      const reference = await api.loadModel(versionDir(RF))
      assert.deepEqual(local, await reference.predict(EXAMPLE_ROW))
      // predictBatch([row, {...row, brandFit: 0.2}]) // = predict on each row
      const rows = [EXAMPLE_ROW, {...EXAMPLE_ROW, brandFit: 0.2}]
      const expected = await Promise.all(rows.map((row) => reference.predict(row)))
      assert.deepEqual(printed[1], [expected.map((p) => p.score)])
      assert.deepEqual(
        batch.predictions.map((/** @type {any} */ p) => p.score),
        expected.map((p) => p.score)
      )
      await reference.close()
    }
  },

  'Local scoring': {
    given: async () => ({row: EXAMPLE_ROW}),
    env: {MODELS_DIR: STORE},
    exports: ['model', 'result'],
    async check({model, result}, block) {
      assertShown(result, commentAfter(block, 'const result ='), 'result')
      assert.equal(result.score, result.successProbability)
      await model.close()
    }
  },

  Drift: {
    async given(context) {
      const copy = await copyVersion(RF)
      context.cleanup.push(copy.cleanup)
      const names = (await sidecarOf(RF)).features.map((f) => f.name)
      return {dir: copy.dir, rows: rowsOf(names, 600)}
    },
    imports: ['loadModel'],
    exports: ['model', 'seen', 'features'],
    async check({model, seen, features}, block) {
      assert.equal(seen, 600)
      assert.equal(features.length, 19)
      const comment = commentAfter(block, 'const {rows: seen, features}')
      for (const [i, feature] of features.entries()) {
        assertShown(feature, comment, `features[${i}]`)
        assert.notEqual(feature.psi, null, 'psi is read from minRows rows on')
      }
      await model.close()
    }
  },

  Explanations: {
    async given(context) {
      const model = await api.loadModel(versionDir(RF))
      context.cleanup.push(() => model.close())
      return {model, row: EXAMPLE_ROW, rows: [EXAMPLE_ROW, {...EXAMPLE_ROW, brandFit: 0.2}]}
    },
    exports: ['result', 'total', 'explained'],
    async check({result, total, explained}, block) {
      assertShown(result, commentAfter(block, 'const result ='), 'result')
      // 'log-odds': p = 1 / (1 + e^−total)
      assert.ok(Math.abs(1 / (1 + Math.exp(-total)) - result.successProbability / 100) <= 1e-5)
      assertShown(explained, commentAfter(block, 'const explained ='), 'explained')
    }
  },

  'Without native code': {
    given: async () => ({row: EXAMPLE_ROW}),
    async setup() {
      await cp(versionDir(RF), path.join('models', RF), {recursive: true})
    },
    exports: ['estimate'],
    async check({estimate}, block) {
      assertShown(estimate, commentAfter(block, 'const estimate ='), 'estimate')
      // p = sigmoid(intercept + Σ wᵢ·xᵢ)
      const {intercept, coefficients} = (await sidecarOf(RF)).baseline
      const z = Object.entries(coefficients).reduce(
        (sum, [name, w]) => sum + w * EXAMPLE_ROW[name],
        intercept
      )
      assert.ok(Math.abs(estimate.successProbability / 100 - 1 / (1 + Math.exp(-z))) <= 1e-12)
    }
  },

  'Client with fallback': {
    given: async () => ({row: EXAMPLE_ROW, rows: [EXAMPLE_ROW, {...EXAMPLE_ROW, brandFit: 0.2}]}),
    env: {ML_SERVICE_ADMIN_TOKEN: ADMIN_TOKEN},
    async setup() {
      await cp(versionDir(RF), path.join('models', RF), {recursive: true})
    },
    exports: ['client', 'result', 'batch', 'folder', 'served'],
    async check({client, result, batch, folder, served}, block, context) {
      assertShown(result, commentAfter(block, 'const result ='), 'result')
      assert.equal(result.source, 'remote')
      assert.deepEqual(
        [batch.source, ...batch.predictions.map((/** @type {any} */ p) => p.source)],
        ['remote', 'remote', 'remote']
      )
      assert.ok(commentAfter(block, 'const folder =').includes(`'${folder}'`), `the comment names ${folder}`)
      assert.equal(folder, path.join('models', GB))
      assert.equal(served.version, GB)
      await served.close()
      assert.equal(client.degraded, false)
      const {named, pattern} = namedRequests(block)
      assert.ok(named.length >= 8, `the comments name the requests: ${named}`)
      assert.match(context.runtime.requests.join('\n') + '\n', pattern)
      assert.deepEqual(context.printed.warn, [], 'the runtime answered: nothing to warn about')
    }
  },

  'The learning loop': {
    given: async () => ({features: EXAMPLE_ROW, collaboration: {id: 'collab-42'}}),
    imports: ['createClient'],
    env: {ML_SERVICE_ADMIN_TOKEN: ADMIN_TOKEN},
    async setup({trainer}) {
      // Enough outcomes of both kinds that a training runs.
      const names = Object.keys(EXAMPLE_ROW)
      const outcomes = rowsOf(names, 80).map((features, i) => ({
        id: `seed-${i}`,
        features,
        outcome: i % 3 !== 0
      }))
      const answer = await exchange(trainer.baseUrl, 'POST', '/outcomes', {body: {outcomes}})
      assert.equal(answer.status, 200)
    },
    exports: ['client', 'recorded', 'trained', 'started', 'job', 'status'],
    async check({client, recorded, trained, started, job, status}, block, context) {
      assertShown(recorded, commentAfter(block, 'const recorded ='), 'recorded')
      assert.deepEqual(recorded, {id: 'collab-42', state: 'stored'})
      assert.ok(context.trainer.stored.has('collab-42'))
      assertShown(trained, commentAfter(block, 'const trained ='), 'trained')
      assertShown(started, commentAfter(block, 'const started ='), 'started')
      // poll it: once `state` is final, `result` is train()'s answer
      assert.equal(job.job, started.job)
      assert.ok(['succeeded', 'rejected', 'failed'].includes(job.state), job.state)
      assert.deepEqual(Object.keys(job.result), Object.keys(trained))
      assertShown(status, commentAfter(block, 'const status ='), 'status')
      assert.deepEqual(status.trainer, {reachable: true, outcomes: 81, runningJob: null})
      assert.equal(client.outcomesWaiting, 0, 'nothing waits: the spool file is not written')
    }
  },

  'The learning loop #2': {
    async given(context) {
      const client = api.createClient({baseUrl: 'http://ml-matching:8000', logger: context.printed.console})
      return {client, row: EXAMPLE_ROW}
    },
    exports: ['model', 'scored'],
    async check({model, scored}, block, context) {
      assert.equal(model.version, context.runtime.served)
      assert.equal(scored.modelVersion, context.runtime.served)
      await model.close()
    }
  },

  Experiments: {
    given: async () => ({row: EXAMPLE_ROW}),
    imports: ['createClient'],
    async setup(context) {
      context.runtime.experiment = experimentOf()
      context.runtime.posts = []
      context.cleanup.push(async () => void (context.runtime.experiment = null))
    },
    exports: ['scored', 'batch', 'recorded', 'running'],
    async check({scored, batch, recorded, running}, block, context) {
      // POST /predict with ML-Unit-Key: brand-42
      assert.equal(context.runtime.posts[0].headers['ml-unit-key'], 'brand-42')
      assertShown(scored, commentAfter(block, 'const scored ='), 'scored')
      assert.deepEqual(context.runtime.posts[1].body.units, ['brand-42', 'Café Müller GmbH'])
      assertShown(batch, commentAfter(block, 'const batch ='), 'batch')
      assert.deepEqual(
        batch.predictions.map((/** @type {any} */ p) => [p.arm, p.modelVersion]),
        [
          ['control', RF],
          ['gb', GB]
        ]
      )
      assertShown(recorded, commentAfter(block, 'const recorded ='), 'recorded')
      assert.deepEqual(
        recorded,
        {predictionId: scored.predictionId, state: 'pending'},
        'the runtime sends its row'
      )
      assertShown(running, commentAfter(block, 'const running ='), 'running')
      assert.deepEqual(running, experimentOf())
    }
  },

  'Experiments #2': {
    given: async () => ({running: experimentOf()}),
    exports: ['b', 'assigned'],
    async check({b, assigned}, block) {
      assert.equal(b, Number(commentAfter(block, 'const b =').trim()))
      assertShown(assigned, commentAfter(block, 'const assigned ='), 'assigned')
      const vectors = JSON.parse(
        await readFile(path.join(STORE, '../../../schemas/assignment-vectors.json'), 'utf8')
      )
      const cafe = vectors.vectors.find((/** @type {any} */ v) => v.key === 'Café Müller GmbH')
      assert.equal(assigned.unit, cafe.sha256)
    }
  },

  'In-process, by the same arms': {
    given: async () => ({row: EXAMPLE_ROW}),
    imports: ['createClient'],
    async setup(context) {
      context.runtime.experiment = experimentOf()
      context.cleanup.push(async () => void (context.runtime.experiment = null))
    },
    exports: ['model', 'local', 'rows'],
    async check({model, local, rows}, block, context) {
      context.cleanup.push(() => model.close())
      assertShown(local, commentAfter(block, 'const local ='), 'local')
      assert.deepEqual(
        rows.predictions.map((/** @type {any} */ p) => p.arm),
        ['control', 'gb']
      )
      // The ledger row of `local`, as the JSON block after this one shows it.
      const stored = context.trainer.predictions.get(local.predictionId)
      const readme = blocks(await readFile(README, 'utf8')).find(
        (b) => b.key === 'In-process, by the same arms #2' && b.lang === 'json'
      )
      const shown = JSON.parse(/** @type {Block} */ (readme).body)
      assert.deepEqual(Object.keys(stored), Object.keys(shown))
      for (const key of [
        'version',
        'probability',
        'experiment',
        'revision',
        'arm',
        'weight',
        'unit',
        'hash',
        'source'
      ])
        assert.deepEqual(stored[key], shown[key], key)
      for (const [name, value] of Object.entries(shown.features))
        if (name !== '…') assert.equal(stored.features[name], value, name)
      assert.deepEqual(stored.shadow, shown.shadow)
      assert.equal(typeof stored.ms, 'number')
      assert.equal(context.trainer.predictions.size, 3, 'local, and the batch of two')
    }
  },

  NestJS:
    'needs NestJS (@nestjs/common and decorators compiled by TypeScript), which is no dependency of ' +
    'this package; only the names it imports from ml-matching-client are checked'
}

// ---------------------------------------------------------------------------------------------

describe('README.md examples', async () => {
  const readme = await readFile(README, 'utf8')
  const code = blocks(readme).filter((block) => block.lang === 'js' || block.lang === 'ts')
  const runtime = new FakeRuntime()
  const trainer = new FakeTrainer()
  /** @type {Record<string, string>} */
  const hosts = {}
  const realFetch = globalThis.fetch
  let modules = ''
  const home = process.cwd()

  before(async () => {
    await runtime.start()
    await trainer.start()
    hosts['http://ml-matching:8000'] = runtime.baseUrl
    hosts['http://localhost:8000'] = runtime.baseUrl
    hosts['http://ml-matching-trainer:8001'] = trainer.baseUrl
    // The examples' hosts reach the fakes (which the setups call directly); anything else is a mistake.
    const fakes = new Set(Object.values(hosts))
    globalThis.fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input))
      if (fakes.has(url.origin)) return realFetch(input, init)
      const target = hosts[url.origin]
      if (!target) throw new Error(`README example fetched ${url.href}: not one of its hosts`)
      return realFetch(target + url.pathname + url.search, init)
    }
    // Inside the package, so that `import ... from 'ml-matching-client'` resolves to it.
    modules = await mkdtemp(path.join(here, '.readme-'))
  })
  after(async () => {
    globalThis.fetch = realFetch
    process.chdir(home)
    await runtime.close()
    await trainer.stop()
    if (modules) await rm(modules, {recursive: true, force: true})
  })

  test('every js and ts block has a run here (or a reason not to run)', () => {
    assert.deepEqual(
      code.map((block) => block.key),
      Object.keys(RUNS)
    )
    assert.equal(
      code[0].marker,
      'newcomer: save quickstart.mjs',
      'the quick start is the one saved by newcomers'
    )
  })

  for (const [i, block] of code.entries()) {
    const run = RUNS[block.key]
    if (typeof run === 'string' || run === undefined) {
      test(`${block.key} (${block.lang})`, {skip: run ?? 'no run is written for it'}, () => {})
      continue
    }
    test(`${block.key} runs as written, and shows what comes out`, async (t) => {
      /** @type {Context} */
      const context = {runtime, trainer, printed: capture(), cleanup: []}
      runtime.served = RF
      runtime.requests = []
      const saved = Object.fromEntries(Object.keys(run.env ?? {}).map((name) => [name, process.env[name]]))
      t.after(async () => {
        process.chdir(home)
        for (const [name, value] of Object.entries(saved)) setEnv(name, value)
        for (const cleanup of context.cleanup) await cleanup()
      })
      process.chdir(await tempDir('readme', t))
      for (const [name, value] of Object.entries(run.env ?? {})) setEnv(name, value)
      await run.setup?.(context)
      const given = (await run.given?.(context)) ?? {}
      const file = path.join(modules, `${i}-${block.key.replace(/\W+/g, '-')}.mjs`)
      await writeModule(file, block, run, Object.keys(given))
      Reflect.set(globalThis, CONTEXT, {...given, console: context.printed.console})
      const scope = await import(pathToFileURL(file).href)
      await run.check(scope, block, context)
    })
  }

  test('the NestJS block imports only what the package exports', () => {
    const nest = code.find((block) => block.key === 'NestJS')
    const imported = /import \{([^}]+)\} from 'ml-matching-client'/.exec(nest?.body ?? '')?.[1] ?? ''
    const names = imported.split(',').map((name) => name.trim())
    assert.ok(names.length > 0)
    for (const name of names) {
      if (name.startsWith('type ')) assert.equal(name, 'type Client', 'a type index.js declares')
      else assert.ok(name in api, `${name} is exported`)
    }
  })
})

/**
 * The prelude, the block as written, and the export of the names checked.
 *
 * @param {string} file
 * @param {Block} block
 * @param {Run} run
 * @param {ReadonlyArray<string>} given
 */
async function writeModule(file, block, run, given) {
  const prelude = [
    ...(run.imports?.length ? [`import {${run.imports.join(', ')}} from 'ml-matching-client'`] : []),
    `const {${[...given, 'console'].join(', ')}} = globalThis[Symbol.for(${JSON.stringify(CONTEXT.description)})]`
  ]
  const text = [...prelude, '', block.body, '', `export {${run.exports.join(', ')}}`, ''].join('\n')
  await writeFile(file, text)
}

/** A `console` for a block: it keeps what is printed. */
function capture() {
  /** @type {Array<Array<unknown>>} */
  const log = []
  /** @type {Array<Array<unknown>>} */
  const warn = []
  const console = {
    log: (/** @type {Array<unknown>} */ ...args) => void log.push(args),
    info: (/** @type {Array<unknown>} */ ...args) => void log.push(args),
    warn: (/** @type {Array<unknown>} */ ...args) => void warn.push(args),
    error: (/** @type {Array<unknown>} */ ...args) => void warn.push(args)
  }
  return {log, warn, console}
}

/**
 * @param {string} name
 * @param {string | undefined} value
 */
function setEnv(name, value) {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}
