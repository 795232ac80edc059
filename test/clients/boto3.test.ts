// The client scenario with boto3 (Debian's python3-boto3, path-style): the steps run in
// boto3_scenario.py, one Python process answering one JSON line per step.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { createWorkspace, PART_SIZE, runScenario, type ScenarioClient } from '../helpers/client-scenario.js';
import { envWithout, findTool, jsonLineProcess } from '../helpers/exec.js';
import { ACCESS_KEY, SECRET_KEY, disposeServer, startServer } from '../helpers/server.js';

// Debian's python3 has python3-boto3; a pyenv python3 may come first on PATH.
const python = await findTool(['/usr/bin/python3', 'python3'], ['-c', 'import boto3; print("boto3", boto3.__version__)'], /^boto3 1\./);

const server = await startServer();
t.teardown(() => disposeServer(server));
const ws = createWorkspace();
t.teardown(() => ws.dispose());

const boto3 = jsonLineProcess(python.path, [fileURLToPath(new URL('boto3_scenario.py', import.meta.url)), server.url, ACCESS_KEY, SECRET_KEY, String(PART_SIZE)], {
  ...envWithout('AWS_'),
  LC_ALL: 'C.UTF-8',
  PYTHONIOENCODING: 'utf-8',
});
t.teardown(() => boto3.close());

interface Reply {
  ok?: unknown;
  error?: { code: string; status?: number; message: string };
}
function unwrap<T>(reply: Reply): T {
  if (reply.error) throw Object.assign(new Error(`boto3: ${reply.error.message}`), reply.error);
  return reply.ok as T;
}
const call = async <T>(op: keyof ScenarioClient, ...args: unknown[]): Promise<T> => unwrap<T>(await boto3.request<Reply>({ op, args }));

t.comment(`${python.path}: ${unwrap(await boto3.next<Reply>())}`);

const client: ScenarioClient = {
  createBucket: (bucket) => call('createBucket', bucket),
  listBuckets: () => call('listBuckets'),
  putFile: (bucket, key, file, meta) => call('putFile', bucket, key, file, meta),
  putDir: (bucket, prefix, dir) => call('putDir', bucket, prefix, dir),
  getDir: (bucket, prefix, dir) => call('getDir', bucket, prefix, dir),
  head: (bucket, key) => call('head', bucket, key),
  getFile: (bucket, key, dest) => call('getFile', bucket, key, dest),
  getRange: async (bucket, key, range) => Buffer.from(await call<string>('getRange', bucket, key, range), 'base64'),
  uploadMultipart: (bucket, key, file) => call('uploadMultipart', bucket, key, file),
  list: (bucket, prefix, delimiter) => call('list', bucket, prefix, delimiter),
  listPaged: (bucket, prefix, pageSize) => call('listPaged', bucket, prefix, pageSize),
  copy: (bucket, from, to) => call('copy', bucket, from, to),
  presignGet: (bucket, key) => call('presignGet', bucket, key),
  deleteObject: (bucket, key) => call('deleteObject', bucket, key),
  deleteObjects: (bucket, keys) => call('deleteObjects', bucket, keys),
  headStatus: (bucket, key) => call('headStatus', bucket, key),
  deleteBucket: (bucket) => call('deleteBucket', bucket),
};

runScenario(t, client, ws, { bucket: 'boto3', presignedHost: `127.0.0.1:${server.port}` });
