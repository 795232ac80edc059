// S3 errors as values: a code and the HTTP status AWS sends with it.
import { MetadataError } from '../metadata/store.js';

const STATUS: Record<string, number> = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BadRequest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  // Not an AWS code: an FSO directory that still holds entries (Ozone: DIRECTORY_NOT_EMPTY).
  DirectoryNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  // Not an AWS code: no datanode had room for the object (MinIO: 507 XMinioStorageFull).
  InsufficientStorage: 507,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidChunkSizeError: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidPartNumber: 416,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidTag: 400,
  InvalidURI: 400,
  KeyTooLongError: 400,
  MalformedTrailerError: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  NoSuchBucket: 404,
  NoSuchBucketPolicy: 404,
  NoSuchCORSConfiguration: 404,
  NoSuchLifecycleConfiguration: 404,
  NoSuchTagSet: 404,
  NoSuchWebsiteConfiguration: 404,
  ObjectLockConfigurationNotFoundError: 404,
  ReplicationConfigurationNotFoundError: 404,
  ServerSideEncryptionConfigurationNotFoundError: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  RequestTimeout: 400,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
};

const DEFAULT_MESSAGE: Record<string, string> = {
  AccessDenied: 'Access Denied',
  BadDigest: 'The Content-MD5 or checksum value that you specified did not match what the server received.',
  BucketAlreadyExists: 'The requested bucket name is not available.',
  BucketAlreadyOwnedByYou: 'Your previous request to create the named bucket succeeded and you already own it.',
  BucketNotEmpty: 'The bucket you tried to delete is not empty',
  DirectoryNotEmpty: 'The directory you tried to delete is not empty; delete what it holds first.',
  InsufficientStorage: 'There is no room left to store this object: delete objects or add storage.',
  InternalError: 'We encountered an internal error. Please try again.',
  InvalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  InvalidRange: 'The requested range is not satisfiable',
  InvalidPart: 'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part\'s entity tag.',
  InvalidPartOrder: 'The list of parts was not in ascending order. Parts must be ordered by part number.',
  InvalidPartNumber: 'The requested partnumber is not satisfiable',
  EntityTooSmall: 'Your proposed upload is smaller than the minimum allowed object size.',
  MalformedXML: 'The XML you provided was not well-formed or did not validate against our published schema.',
  MissingContentLength: 'You must provide the Content-Length HTTP header.',
  NoSuchBucket: 'The specified bucket does not exist',
  NoSuchKey: 'The specified key does not exist.',
  NoSuchUpload: 'The specified upload does not exist.',
  NotImplemented: 'A header or query you provided implies functionality that is not implemented.',
  PreconditionFailed: 'At least one of the pre-conditions you specified did not hold',
  RequestTimeTooSkewed: 'The difference between the request time and the server\'s time is too large.',
  ServiceUnavailable: 'The service cannot handle the request now. Please try again.',
  SignatureDoesNotMatch: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  XAmzContentSHA256Mismatch: 'The provided \'x-amz-content-sha256\' header does not match what was computed.',
};

export class S3Error extends Error {
  readonly status: number;
  constructor(
    readonly code: string,
    message?: string,
    /** Extra elements of the <Error> document, e.g. BucketName or Key. */
    readonly details: Record<string, string> = {},
  ) {
    super(message ?? DEFAULT_MESSAGE[code] ?? code);
    this.name = 'S3Error';
    this.status = STATUS[code] ?? 400;
  }
}

export const s3Error = (code: string, message?: string, details?: Record<string, string>): S3Error =>
  new S3Error(code, message, details);

const METADATA_ERRORS: Record<string, string> = { NoSuchUser: 'InvalidAccessKeyId', UserAlreadyExists: 'InvalidRequest', InvalidKey: 'InvalidArgument' };

/** The S3 error a failure becomes: itself, a metadata domain error's S3 code, else InternalError. */
export function toS3Error(error: unknown): S3Error {
  if (error instanceof S3Error) return error;
  if (error instanceof MetadataError) return s3Error(METADATA_ERRORS[error.code] ?? error.code, error.code === 'InvalidKey' ? error.message : undefined);
  return s3Error('InternalError');
}
