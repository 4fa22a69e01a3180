// S4 with pg-boss: enqueue 5,000 no-op jobs, then drain them with 4 workers.
//
// Usage: node pgboss_drain.mjs [DATABASE_URL]
//
// Runs in a fresh schema (peers_pgboss_<pid>) that it drops at the end. Enqueue is one
// `send` call (one INSERT) per job from 4 concurrent callers. pg-boss 10 has no per-worker
// concurrency option: each `work()` call adds one polling worker that fetches `batchSize`
// jobs, runs the handler on them and fetches again after `pollingIntervalSeconds` (at
// least 0.5 s). Concurrency 4 is therefore 4 `work()` workers of batchSize 1 (PGBOSS_BATCH_SIZE
// changes the batch size), polling every 0.5 s. Drain is timed from the start of the
// workers until the last job is marked completed in the job table (polled every 20 ms).
import { readFileSync } from 'node:fs'
import pg from 'pg'
import PgBoss from 'pg-boss'

const JOBS = Number(process.env.JOBS || 5000)
const WORKERS = 4
const BATCH_SIZE = Number(process.env.PGBOSS_BATCH_SIZE || 1)
const POLLING_INTERVAL_SECONDS = 0.5
const ENQUEUERS = 4
const DATABASE_URL = process.argv[2] || process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const SCHEMA = `peers_pgboss_${process.pid}`
const QUEUE = 'noop'
const VERSION = JSON.parse(readFileSync(new URL('node_modules/pg-boss/package.json', import.meta.url))).version

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const seconds = since => Number(process.hrtime.bigint() - since) / 1e9

async function bench (admin) {
  const boss = new PgBoss({ connectionString: DATABASE_URL, schema: SCHEMA })
  boss.on('error', error => console.error('pg-boss:', error.message))
  await boss.start()
  try {
    await boss.createQueue(QUEUE)

    const enqueue = async count => { for (let i = 0; i < count; i++) await boss.send(QUEUE) }
    let started = process.hrtime.bigint()
    await Promise.all(Array.from({ length: ENQUEUERS }, (_, i) =>
      enqueue(Math.floor(JOBS / ENQUEUERS) + (i < JOBS % ENQUEUERS ? 1 : 0))))
    const enqueued = seconds(started)

    const completed = async () => Number((await admin.query(
      `SELECT count(*) AS n FROM ${SCHEMA}.job WHERE name = $1 AND state = 'completed'`, [QUEUE])).rows[0].n)
    started = process.hrtime.bigint()
    for (let i = 0; i < WORKERS; i++) {
      await boss.work(QUEUE, { batchSize: BATCH_SIZE, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS }, async () => {})
    }
    while (await completed() < JOBS) await sleep(20)
    const drained = seconds(started)

    const { rows } = await admin.query(`SELECT state::text, count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 GROUP BY state`, [QUEUE])
    if (rows.length !== 1 || rows[0].n !== JOBS) throw new Error(`expected ${JOBS} completed jobs, found ${JSON.stringify(rows)}`)
    return { enqueued, drained }
  } finally {
    await boss.stop({ graceful: true, wait: true })
  }
}

const admin = new pg.Client({ connectionString: DATABASE_URL })
await admin.connect()
try {
  const { enqueued, drained } = await bench(admin)
  console.log(`pg-boss ${VERSION}: enqueue ${(JOBS / enqueued).toFixed(0)} jobs/s, drain ${(JOBS / drained).toFixed(0)} jobs/s ` +
    `(${JOBS} jobs, ${WORKERS} workers × batchSize ${BATCH_SIZE}, polling ${POLLING_INTERVAL_SECONDS} s; ` +
    `enqueue ${enqueued.toFixed(2)} s, drain ${drained.toFixed(2)} s)`)
} finally {
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  await admin.end()
}
