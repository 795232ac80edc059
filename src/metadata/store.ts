// The metadata interface (Ozone Manager's role). Every implementation (SQLite embedded,
// PostgreSQL for clusters) passes the same suite in test/metadata.test.ts. Methods are
// async so that a network database fits behind the same interface.
//
// Keys are S3 keys in both bucket layouts; in an FSO bucket the store normalises them and
// maps them to its directory tree (namespace.ts), inside the transaction that uses them.
import type { InlineCacheStats } from './inline-body-cache.js';
import type { ObjectCacheStats } from './object-record-cache.js';
import type { WalCheckpointStats } from './wal-checkpointer.js';

export interface User {
  name: string;
  /** 64 hex chars, shown as <Owner><ID>. */
  canonicalId: string;
  displayName: string;
  admin: boolean;
  /** The tenant whose volume holds the user's buckets; absent: volume s3v. */
  tenant?: string;
  createdAt: number;
}

/** A tenant (Ozone's S3 multi-tenancy): its users' buckets live in the volume of its name. */
export interface Tenant {
  name: string;
  volume: string;
  createdAt: number;
}

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  userName: string;
  createdAt: number;
}

export interface UserWithKeys extends User {
  accessKeys: AccessKey[];
}

export type BucketLayout = 'OBS' | 'FSO';

export interface Bucket {
  id: number;
  volume: string;
  name: string;
  owner: string;
  layout: BucketLayout;
  createdAt: number;
}

export interface BlockRef {
  containerId: number;
  localId: number;
}

export interface BlockLocation extends BlockRef {
  /** Bytes of the object held by this block. */
  length: number;
  /** Datanode ids holding a replica, in preference order. */
  replicas: string[];
}

/** Attributes the gateway stores with an object and returns verbatim (headers, user metadata, tags, checksums). */
export type ObjectAttributes = Record<string, unknown>;

export interface ObjectReadOptions {
  /** Whether the caller needs an inline object's bytes (true by default). */
  body?: boolean;
}

export interface ObjectRecord {
  bucketId: number;
  key: string;
  /** Unique per written version; blocks belong to it. */
  objectId: string;
  size: number;
  etag: string;
  modifiedAt: number;
  attributes: ObjectAttributes;
  blocks: BlockLocation[];
  /** A small object's bytes, kept in the metadata row instead of blocks (then blocks is empty). */
  inlineData?: Buffer;
}

export type ObjectSummary = Omit<ObjectRecord, 'blocks' | 'attributes' | 'inlineData'>;

/**
 * 'put': a single PutObject in flight. 'multipart': an unfinished multipart upload (its
 * objectId is the S3 UploadId, and becomes the object's id on completion). 'part': one
 * UploadPart in flight; committed into its upload by commitPart.
 */
export type OpenKeyKind = 'put' | 'multipart' | 'part';

export interface OpenKey {
  objectId: string;
  bucketId: number;
  key: string;
  kind: OpenKeyKind;
  createdAt: number;
  /** What openKey was given (a multipart upload's headers, metadata, tagging, checksum algorithm); absent when none. */
  attributes?: ObjectAttributes;
}

export interface CommitKeyInput {
  objectId: string;
  bucketId: number;
  key: string;
  size: number;
  etag: string;
  attributes: ObjectAttributes;
  /** In object order; each must have been allocated to objectId. */
  blocks: { containerId: number; localId: number; length: number }[];
  /** A small object's bytes stored with its metadata (blocks then empty); durable as the metadata is. */
  inlineData?: Uint8Array;
  /** Checked inside the commit transaction: '*' = the key must not exist; otherwise the current etag must equal it. */
  ifNoneMatch?: '*';
  ifMatch?: string;
}

/** An x-amz-checksum-* value as the client sent it (algorithm lowercase, e.g. 'crc32'; value base64). */
export interface PartChecksum {
  algorithm: string;
  value: string;
}

export interface PartRecord {
  partNumber: number;
  size: number;
  /** Hex MD5 of the part, unquoted. */
  etag: string;
  checksum?: PartChecksum;
  modifiedAt: number;
}

export interface PartWithBlocks extends PartRecord {
  blocks: BlockLocation[];
}

export interface CommitPartInput {
  uploadId: string;
  partNumber: number;
  /** The part's own open key (kind 'part'), whose blocks become the part's. */
  objectId: string;
  size: number;
  etag: string;
  checksum?: PartChecksum;
  /** In part order; each must have been allocated to objectId. */
  blocks: { containerId: number; localId: number; length: number }[];
}

export interface MultipartUpload {
  uploadId: string;
  bucketId: number;
  key: string;
  createdAt: number;
  attributes: ObjectAttributes;
}

export interface ListMultipartUploadsQuery {
  prefix?: string;
  /** Uploads of keys strictly after this key, plus (with uploadIdMarker) those of this key with a greater upload id. */
  keyMarker?: string;
  uploadIdMarker?: string;
  limit: number;
}

export interface CompleteMultipartUploadInput {
  uploadId: string;
  bucketId: number;
  key: string;
  /** The chosen part numbers, strictly ascending; their blocks become the object's, in this order. */
  parts: number[];
  /**
   * When given (parallel to parts), each chosen part's etag must still be this one: the caller
   * computed size and etag from the parts it read, and a part re-uploaded since then is InvalidPart.
   */
  partEtags?: string[];
  /** Must equal the sum of the chosen parts' sizes (InvalidPart otherwise: a part was replaced meanwhile). */
  size: number;
  etag: string;
  attributes: ObjectAttributes;
  ifNoneMatch?: '*';
  ifMatch?: string;
}

export interface BucketUsage {
  volume: string;
  name: string;
  /** Committed objects and the sum of their sizes (in-flight and multipart uploads not counted). */
  objects: number;
  bytes: number;
}

export interface StoreUsage {
  /** Every bucket of every volume, by volume then name. */
  buckets: BucketUsage[];
  /** Open keys of every kind: PUTs and parts in flight or abandoned, unfinished multipart uploads. */
  openKeys: number;
  /** Replicas waiting in the deleted-block log. */
  pendingBlockDeletions: number;
  /**
   * Blocks by how many of their replicas sit on live datanodes: { '3': 1200, '2': 4, '0': 1 }.
   * A replica on a dead or unregistered datanode does not count; 0 means no live copy.
   */
  blocksByLiveReplicas: Record<string, number>;
}

export interface DatanodeRecord {
  id: string;
  address: string;
  capacityBytes: number;
  usedBytes: number;
  lastHeartbeat: number;
  state: 'live' | 'dead';
}

export interface BlockDeletion {
  id: number;
  datanodeId: string;
  block: BlockRef;
}

/** A committed block with fewer live replicas than wanted. */
export interface UnderReplicatedBlock extends BlockRef {
  length: number;
  /** Every recorded replica, live or not. */
  replicas: string[];
  /** The replicas on live datanodes: where a copy can be read from. */
  live: string[];
}

export interface ListObjectsQuery {
  prefix?: string;
  /** Keys strictly greater than this. */
  after?: string;
  limit: number;
  /**
   * The caller folds keys into common prefixes at this delimiter (after `prefix`), so a store
   * may leave out every key of a common prefix but its first. SQLite does, in one read
   * transaction, which makes a page of many prefixes one call; other stores return every key.
   */
  delimiter?: string;
}

export type MetadataErrorCode =
  | 'BucketAlreadyExists'
  | 'BucketAlreadyOwnedByYou'
  | 'BucketNotEmpty'
  | 'NoSuchBucket'
  | 'NoSuchUpload'
  /** CompleteMultipartUpload named a part that does not exist (or no longer has the expected size). */
  | 'InvalidPart'
  /** CompleteMultipartUpload part numbers not strictly ascending. */
  | 'InvalidPartOrder'
  /** If-Match on a key that does not exist (AWS answers 404 NoSuchKey, not 412). */
  | 'NoSuchKey'
  | 'PreconditionFailed'
  | 'UserAlreadyExists'
  | 'NoSuchUser'
  | 'TenantAlreadyExists'
  | 'NoSuchTenant'
  | 'NoSuchAccessKey'
  /** FSO: a key with a `.` or `..` segment, or nothing but slashes (S3: InvalidArgument). */
  | 'InvalidKey'
  /** FSO: DeleteObject of a directory that still holds files or directories. */
  | 'DirectoryNotEmpty'
  /** FSO rename: the destination exists. */
  | 'KeyAlreadyExists'
  /** An operation the bucket's layout does not allow (rename in an OBS bucket, a directory into itself). */
  | 'InvalidRequest'
  /** The store cannot be reached (PostgreSQL down, refusing, or silent past the connect timeout): the client may retry. */
  | 'ServiceUnavailable'
  /** The store's disk is full (SQLite: SQLITE_FULL); nothing of the failed write was applied. */
  | 'InsufficientStorage';

/** A domain error the gateway maps to an S3 error; anything else is a server fault. */
export class MetadataError extends Error {
  constructor(readonly code: MetadataErrorCode, message?: string) {
    super(message ?? code);
    this.name = 'MetadataError';
  }
}

export interface MetadataStore {
  /** The SQLite store's cache of inline bodies (inline-body-cache.ts); absent where there is none. */
  inlineCacheStats?(): InlineCacheStats;
  /** The SQLite store's cache of object records (object-record-cache.ts); absent where there is none. */
  objectCacheStats?(): ObjectCacheStats;
  /** The SQLite store's WAL checkpoints on its worker thread (wal-checkpointer.ts); absent, or undefined, where there are none. */
  walCheckpointStats?(): WalCheckpointStats | undefined;
  /**
   * Applies pending schema migrations and creates the `s3v` volume; with a KEK, seals any
   * secret still stored in plaintext. Idempotent.
   */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // Tenants.
  /** Creates a tenant and its volume (named after it). Throws TenantAlreadyExists (also for a taken volume name such as s3v). */
  createTenant(name: string): Promise<Tenant>;
  getTenant(name: string): Promise<Tenant | undefined>;
  listTenants(): Promise<Tenant[]>;

  // Users and access keys. Secrets are sealed with the store's KEK (SecretBox) at rest, and
  // every method that reads or writes one throws without a KEK.
  /** Creates a user with one access key (generated unless given). Throws UserAlreadyExists, NoSuchTenant. */
  createUser(input: { name: string; admin?: boolean; tenant?: string; accessKeyId?: string; secretAccessKey?: string }): Promise<UserWithKeys>;
  /** Creates the user if missing and adds the access key if missing; used for the bootstrap admin. */
  ensureUser(input: { name: string; admin: boolean; accessKeyId: string; secretAccessKey: string }): Promise<UserWithKeys>;
  getUser(name: string): Promise<UserWithKeys | undefined>;
  /** Every user, or the users of one tenant. */
  listUsers(tenant?: string): Promise<User[]>;
  /**
   * Cached (lookup-cache.ts), but a revoked key stops working on every gateway by the time
   * revokeAccessKey resolves.
   */
  lookupAccessKey(accessKeyId: string): Promise<{ user: User; secretAccessKey: string } | undefined>;
  /** A new generated access key for the user. Throws NoSuchUser. */
  createAccessKey(userName: string): Promise<AccessKey>;
  /** Deletes the access key. Throws NoSuchAccessKey. */
  revokeAccessKey(accessKeyId: string): Promise<void>;
  /** Re-seals every secret not sealed with the current KEK (plaintext ones included). */
  rekeySecrets(): Promise<{ resealed: number; total: number }>;

  // Volumes and buckets.
  createBucket(input: { volume: string; name: string; owner: string; layout?: BucketLayout }): Promise<Bucket>;
  getBucket(volume: string, name: string): Promise<Bucket | undefined>;
  /** Whether a bucket of this name exists in any volume. */
  bucketExists(name: string): Promise<boolean>;
  listBuckets(volume: string, owner?: string): Promise<Bucket[]>;
  /** Throws NoSuchBucket, or BucketNotEmpty when it holds keys or unfinished multipart uploads. */
  deleteBucket(volume: string, name: string): Promise<void>;

  // Objects: data first, then one metadata transaction.
  openKey(input: { bucketId: number; key: string; kind: OpenKeyKind; attributes?: ObjectAttributes }): Promise<OpenKey>;
  getOpenKey(objectId: string): Promise<OpenKey | undefined>;
  /** Records a new block of objectId on these datanodes before any byte is written; refreshes the open key. */
  allocateBlock(objectId: string, replicas: string[]): Promise<BlockRef>;
  /**
   * Makes the object visible and removes its open key; the replaced version's blocks go to the
   * deleted-block log. An object without blocks (inline or empty) may commit under a fresh
   * objectId that was never opened. Throws NoSuchBucket, NoSuchUpload, PreconditionFailed,
   * NoSuchKey (ifMatch on a missing key).
   */
  commitKey(input: CommitKeyInput): Promise<ObjectRecord>;
  /**
   * A replica failed while its block was written: it no longer counts as a copy, and whatever
   * part of the block reached that datanode goes to the deleted-block log.
   */
  dropReplica(block: BlockRef, datanodeId: string): Promise<void>;
  /** Drops an open key; its blocks (and, for a multipart upload, its parts' blocks) go to the deleted-block log. */
  abortOpenKey(objectId: string): Promise<void>;
  /**
   * An object's current version. `body: false` is for reads of its metadata only (HEAD,
   * tagging): a store may then leave an inline object's bytes out, and its record has
   * neither inlineData nor blocks.
   */
  getObject(bucketId: number, key: string, options?: ObjectReadOptions): Promise<ObjectRecord | undefined>;
  /** Returns false when the key did not exist. Blocks go to the deleted-block log. */
  deleteObject(bucketId: number, key: string): Promise<boolean>;
  /**
   * Replaces the attributes (tags, say) of the version `objectId` of a key, without touching
   * its data. Returns false when the key is gone or now holds another version.
   */
  setObjectAttributes(bucketId: number, key: string, objectId: string, attributes: ObjectAttributes): Promise<boolean>;
  /** Keys in byte order of their UTF-8 encoding. */
  listObjects(bucketId: number, query: ListObjectsQuery): Promise<ObjectSummary[]>;
  /**
   * FSO buckets: moves the directory (or else the file) at path `from` to path `to` in one
   * transaction; a directory costs one row update whatever it holds. Missing parents of `to`
   * are created. Throws NoSuchKey, KeyAlreadyExists, InvalidKey, InvalidRequest (an OBS bucket,
   * or a directory into itself).
   */
  rename(bucketId: number, from: string, to: string): Promise<'directory' | 'file'>;

  // Multipart uploads: openKey kind 'multipart' starts one (its objectId is the UploadId).
  /**
   * Makes a written part (open key kind 'part') part partNumber of the upload, in one
   * transaction: a previous part with that number is replaced (its blocks to the
   * deleted-block log), the part's open key is removed and its blocks now belong to the part.
   * Throws NoSuchUpload when the upload or the part's open key is gone, or they name different keys.
   */
  commitPart(input: CommitPartInput): Promise<PartRecord>;
  /** Parts in part-number order, numbers strictly above `after`. Throws NoSuchUpload. */
  listParts(uploadId: string, query: { after?: number; limit: number }): Promise<PartRecord[]>;
  /** Every part with its blocks, in part-number order (what completion needs). Throws NoSuchUpload. */
  getParts(uploadId: string): Promise<PartWithBlocks[]>;
  /** Unfinished uploads of a bucket, by key (UTF-8 byte order) then upload id. */
  listMultipartUploads(bucketId: number, query: ListMultipartUploadsQuery): Promise<MultipartUpload[]>;
  /**
   * One transaction: the chosen parts' blocks become the object's (id = uploadId), in order;
   * parts not chosen and the replaced version go to the deleted-block log; the upload and its
   * parts are removed. Throws NoSuchBucket, NoSuchUpload, InvalidPart, InvalidPartOrder,
   * PreconditionFailed, NoSuchKey (ifMatch on a missing key); on any error nothing changes.
   */
  completeMultipartUpload(input: CompleteMultipartUploadInput): Promise<ObjectRecord>;
  /** Drops the upload: its parts' blocks and any block allocated to it go to the log. Throws NoSuchUpload. */
  abortMultipartUpload(uploadId: string): Promise<void>;

  // Datanodes.
  registerDatanode(input: { id: string; address: string; capacityBytes: number; usedBytes: number }): Promise<void>;
  heartbeat(id: string, usage: { capacityBytes: number; usedBytes: number }): Promise<void>;
  listDatanodes(): Promise<DatanodeRecord[]>;
  /** An operator's verdict (or a missed-heartbeat timeout's): the datanode is dead until it registers or heartbeats again. */
  declareDatanodeDead(id: string): Promise<void>;

  // Background services.
  /**
   * Takes or renews the lease `name` for `holder` when it is free, expired or already
   * `holder`'s; so that one gateway at a time runs a background service.
   */
  tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Committed blocks with fewer than `replication` replicas on live datanodes (and at least one). */
  underReplicatedBlocks(replication: number, limit: number): Promise<UnderReplicatedBlock[]>;
  /**
   * Records the replica set of a block after re-replication. Replicas dropped from the set go to
   * the deleted-block log; if the block is gone meanwhile, all of `replicas` do.
   */
  replaceReplicas(block: BlockRef, replicas: string[]): Promise<void>;
  /** Aborts multipart uploads started more than olderThanMs ago; returns how many. */
  expireMultipartUploads(olderThanMs: number): Promise<number>;
  /** Aborts open keys of kind 'put' or 'part' not touched for olderThanMs; returns how many. Multipart uploads are kept. */
  expireOpenKeys(olderThanMs: number): Promise<number>;
  pendingBlockDeletions(limit: number): Promise<BlockDeletion[]>;
  completeBlockDeletions(ids: number[]): Promise<void>;

  // Monitoring.
  /**
   * Totals for metrics and the admin view, from one read snapshot. It scans objects and block
   * replicas: poll it seconds apart, never per request.
   */
  usage(): Promise<StoreUsage>;
}
