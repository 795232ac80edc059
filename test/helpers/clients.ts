// Real S3 clients pointed at a test server: the AWS SDK v3 in-process, the aws CLI as a child.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { ACCESS_KEY, SECRET_KEY, type TestServer } from './server.js';

const run = promisify(execFile);

/** The SDK with a signed payload (no aws-chunked); `sdkDefaultClient` keeps the SDK's defaults. */
export function sdkClient(server: TestServer, credentials = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY }): S3Client {
  return new S3Client({
    endpoint: server.url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function awsEnv(accessKeyId = ACCESS_KEY, secretAccessKey = SECRET_KEY): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
}

/** Runs `aws --endpoint-url URL ...args`; rejects with stderr on a non-zero exit. */
export async function aws(server: TestServer, args: string[], env = awsEnv()): Promise<string> {
  const { stdout } = await run('aws', ['--endpoint-url', server.url, ...args], { env, maxBuffer: 64 << 20 });
  return stdout;
}

/** The S3 error code and HTTP status of a failed SDK call. */
export async function s3Failure(promise: Promise<unknown>): Promise<{ code: string; status: number | undefined }> {
  try {
    await promise;
  } catch (error) {
    const e = error as { name: string; Code?: string; $metadata?: { httpStatusCode?: number } };
    return { code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the S3 call to fail');
}
