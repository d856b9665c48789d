// Node BullMQ producer for the interop tests: node producer.mjs <redisUrl> <prefix> <queue> <count>
import { Queue } from 'bullmq';

const [redisUrl, prefix, queueName, count] = process.argv.slice(2);
const url = new URL(redisUrl);
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) };
const queue = new Queue(queueName, { connection, prefix });
const jobs = [];
for (let i = 0; i < Number(count); i++) {
  jobs.push({ name: 'from-node', data: { i, email: `User${i}@Example.COM` }, opts: { attempts: 2, backoff: { type: 'fixed', delay: 50 } } });
}
const added = await queue.addBulk(jobs);
await queue.add('delayed-from-node', { i: -1 }, { delay: 200, jobId: 'node-delayed' });
console.log(JSON.stringify({ added: added.map((j) => j.id) }));
await queue.close();
