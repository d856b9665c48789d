// Node BullMQ worker for the interop tests: node worker.mjs <redisUrl> <prefix> <queue> <count>
// Processes <count> jobs (failing those named "fail-once" on their first attempt), then exits.
import { Worker } from 'bullmq';

const [redisUrl, prefix, queueName, count] = process.argv.slice(2);
const url = new URL(redisUrl);
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0), maxRetriesPerRequest: null };
let done = 0;
const worker = new Worker(
  queueName,
  async (job) => {
    await job.updateProgress(50);
    if (job.name === 'fail-once' && job.attemptsMade === 0) throw new Error('first attempt fails');
    return { doubled: job.data.n * 2, by: 'node', attempt: job.attemptsMade + 1 };
  },
  { connection, prefix, concurrency: 4 },
);
const timer = setTimeout(() => { console.error('node worker: timed out'); process.exit(2); }, 30000);
worker.on('completed', async () => {
  done += 1;
  if (done === Number(count)) {
    clearTimeout(timer);
    await worker.close();
    console.log(JSON.stringify({ done }));
    process.exit(0);
  }
});
worker.on('error', (err) => console.error('node worker error', err));
