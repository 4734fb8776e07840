// Scores rows with the Node client's in-process model, for tests/property/test_node_parity.py:
// reads one JSON array of rows per stdin line, writes one JSON answer (or {"error"}) per line.
import {createInterface} from 'node:readline'
import {loadModel} from '../../clients/node/index.js'

const model = await loadModel(process.argv[2])
for await (const line of createInterface({input: process.stdin})) {
  try {
    process.stdout.write(JSON.stringify(await model.predictBatch(JSON.parse(line))) + '\n')
  } catch (error) {
    process.stdout.write(JSON.stringify({error: error.message}) + '\n')
  }
}
await model.close()
