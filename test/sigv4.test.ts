// SigV4 signatures against the examples AWS publishes (S3 API reference, "Signature
// Calculations for the Authorization Header" and "Query String Authentication"), and the
// signing-key HMAC against node's own createHmac.
import t from 'tap';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { computeSignature, headerMap, parseAuthorizationHeader, parsePresignedQuery, signingKey, type RequestParts } from '../src/auth/sigv4.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const HOST = 'examplebucket.s3.amazonaws.com';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

t.test('GET with the Authorization header (AWS example)', async (t) => {
  const expected = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';
  const rawHeaders = [
    'Host', HOST, 'Range', 'bytes=0-9', 'x-amz-content-sha256', EMPTY_SHA256, 'x-amz-date', '20130524T000000Z',
    'Authorization', `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${expected}`,
  ];
  const parts: RequestParts = { method: 'GET', rawPath: '/test.txt', rawQuery: '', headers: headerMap(rawHeaders) };
  const signed = parseAuthorizationHeader(parts.headers.get('authorization')![0]!, parts);
  t.equal(computeSignature(parts, signed, SECRET), expected);
  t.not(computeSignature(parts, signed, SECRET.replace('K7', 'K8')), expected, 'another secret, another signature');
});

t.test('presigned GET (AWS example)', async (t) => {
  const expected = 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
  const rawQuery =
    'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request' +
    `&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=${expected}`;
  const parts: RequestParts = { method: 'GET', rawPath: '/test.txt', rawQuery, headers: headerMap(['Host', HOST]) };
  const signed = parsePresignedQuery(new URLSearchParams(rawQuery), Date.UTC(2013, 4, 24, 1));
  t.equal(computeSignature(parts, signed, SECRET), expected);
  const tampered = { ...parts, rawPath: '/test.txu' };
  t.not(computeSignature(tampered, signed, SECRET), expected, 'another path, another signature');
});

t.test('the request HMAC equals createHmac with the signing key, for any string to sign', async (t) => {
  // computeSignature's HMAC runs over cached pads; compare it with node's on random requests.
  for (let i = 0; i < 200; i++) {
    const secret = randomBytes(30).toString('base64');
    const path = `/b/${randomBytes(1 + (i % 40)).toString('hex')}${i % 3 === 0 ? '/é€😀' : ''}`;
    const rawHeaders = ['Host', 'h', 'x-amz-date', '20261127T120000Z', 'x-amz-content-sha256', 'UNSIGNED-PAYLOAD'];
    const parts: RequestParts = { method: 'PUT', rawPath: encodeURI(path), rawQuery: '', headers: headerMap(rawHeaders) };
    const credential = { accessKeyId: 'AK', date: '20261127', region: i % 2 ? 'us-east-1' : 'eu-west-3', service: 's3' };
    const signed = { credential, signedHeaders: ['host', 'x-amz-content-sha256', 'x-amz-date'], signature: '', amzDate: '20261127T120000Z', payloadHash: 'UNSIGNED-PAYLOAD', presigned: false };
    const canonical = ['PUT', encodeURI(path), '', 'host:h\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20261127T120000Z\n', 'host;x-amz-content-sha256;x-amz-date', 'UNSIGNED-PAYLOAD'].join('\n');
    const toSign = `AWS4-HMAC-SHA256\n20261127T120000Z\n20261127/${credential.region}/s3/aws4_request\n${createHash('sha256').update(canonical).digest('hex')}`;
    const reference = createHmac('sha256', signingKey(secret, credential)).update(toSign).digest('hex');
    if (computeSignature(parts, signed, secret) !== reference) {
      t.fail(`differs for ${path} in ${credential.region}`);
      return;
    }
  }
  t.pass('200 random requests agree');
});
