import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import {test} from 'node:test'
import * as api from '../index.js'

test('the public surface is exactly this', () => {
  assert.deepEqual(Object.keys(api).sort(), [
    'ArtifactCorruptError',
    'InvalidInputError',
    'MLMatchingError',
    'RequestRejectedError',
    'ServiceUnavailableError',
    'createClient',
    'loadModel',
    'readSidecar',
    'weightedModel'
  ])
})

test('the package resolves by its name through the exports map', async () => {
  const self = await import('ml-matching-client')
  assert.equal(self.loadModel, api.loadModel)
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'))
  assert.equal(pkg.type, 'module')
  assert.deepEqual(Object.keys(pkg.dependencies), ['onnxruntime-node'])
})

test('every error derives from MLMatchingError and Error, and names itself', () => {
  for (const [name, value] of Object.entries(api)) {
    if (!name.endsWith('Error')) continue
    const ErrorClass = /** @type {new (...args: any[]) => Error} */ (value)
    assert.ok(ErrorClass.prototype instanceof Error, name)
    if (name !== 'MLMatchingError') assert.ok(ErrorClass.prototype instanceof api.MLMatchingError, name)
  }
  assert.equal(new api.ServiceUnavailableError('x').name, 'ServiceUnavailableError')
  assert.equal(new api.ArtifactCorruptError('sha256', 'x').name, 'ArtifactCorruptError')
  assert.equal(new api.RequestRejectedError('GET /', 404, 'not_found', 'x').name, 'RequestRejectedError')
  assert.equal(new api.InvalidInputError('x', {reason: 'shape'}).name, 'InvalidInputError')
  assert.equal(new api.MLMatchingError('x').name, 'MLMatchingError')
})
