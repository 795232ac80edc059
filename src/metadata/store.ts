// The metadata interface (Ozone Manager's role). Every implementation (SQLite embedded,
// PostgreSQL for clusters) passes the same suite in test/metadata.test.ts. Methods are
// async so that a network database fits behind the same interface.

export interface User {
  name: string;
  /** 64 hex chars, shown as <Owner><ID>. */
  canonicalId: string;
  displayName: string;
  admin: boolean;
  createdAt: number;
}

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  userName: string;
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
}

export type ObjectSummary = Omit<ObjectRecord, 'blocks' | 'attributes'>;

export type OpenKeyKind = 'put' | 'multipart';

export interface OpenKey {
  objectId: string;
  bucketId: number;
  key: string;
  kind: OpenKeyKind;
  createdAt: number;
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
  /** Checked inside the commit transaction: '*' = the key must not exist; otherwise the current etag must equal it. */
  ifNoneMatch?: '*';
  ifMatch?: string;
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

export interface ListObjectsQuery {
  prefix?: string;
  /** Keys strictly greater than this. */
  after?: string;
  limit: number;
}

export type MetadataErrorCode =
  | 'BucketAlreadyExists'
  | 'BucketAlreadyOwnedByYou'
  | 'BucketNotEmpty'
  | 'NoSuchBucket'
  | 'NoSuchUpload'
  /** If-Match on a key that does not exist (AWS answers 404 NoSuchKey, not 412). */
  | 'NoSuchKey'
  | 'PreconditionFailed'
  | 'UserAlreadyExists'
  | 'NoSuchUser';

/** A domain error the gateway maps to an S3 error; anything else is a server fault. */
export class MetadataError extends Error {
  constructor(readonly code: MetadataErrorCode, message?: string) {
    super(message ?? code);
    this.name = 'MetadataError';
  }
}

export interface MetadataStore {
  /** Applies pending schema migrations and creates the `s3v` volume. Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // Users and access keys.
  /** Creates a user with one access key (generated unless given). Throws UserAlreadyExists. */
  createUser(input: { name: string; admin?: boolean; accessKeyId?: string; secretAccessKey?: string }): Promise<UserWithKeys>;
  /** Creates the user if missing and adds the access key if missing; used for the bootstrap admin. */
  ensureUser(input: { name: string; admin: boolean; accessKeyId: string; secretAccessKey: string }): Promise<UserWithKeys>;
  getUser(name: string): Promise<UserWithKeys | undefined>;
  listUsers(): Promise<User[]>;
  lookupAccessKey(accessKeyId: string): Promise<{ user: User; secretAccessKey: string } | undefined>;

  // Volumes and buckets.
  createBucket(input: { volume: string; name: string; owner: string; layout?: BucketLayout }): Promise<Bucket>;
  getBucket(volume: string, name: string): Promise<Bucket | undefined>;
  listBuckets(volume: string, owner?: string): Promise<Bucket[]>;
  /** Throws NoSuchBucket, or BucketNotEmpty when it holds keys or unfinished multipart uploads. */
  deleteBucket(volume: string, name: string): Promise<void>;

  // Objects: data first, then one metadata transaction.
  openKey(input: { bucketId: number; key: string; kind: OpenKeyKind }): Promise<OpenKey>;
  getOpenKey(objectId: string): Promise<OpenKey | undefined>;
  /** Records a new block of objectId on these datanodes before any byte is written; refreshes the open key. */
  allocateBlock(objectId: string, replicas: string[]): Promise<BlockRef>;
  /** Makes the object visible and removes its open key; the replaced version's blocks go to the deleted-block log. Throws NoSuchBucket, NoSuchUpload, PreconditionFailed, NoSuchKey (ifMatch on a missing key). */
  commitKey(input: CommitKeyInput): Promise<ObjectRecord>;
  /** Drops an open key; its blocks go to the deleted-block log. */
  abortOpenKey(objectId: string): Promise<void>;
  getObject(bucketId: number, key: string): Promise<ObjectRecord | undefined>;
  /** Returns false when the key did not exist. Blocks go to the deleted-block log. */
  deleteObject(bucketId: number, key: string): Promise<boolean>;
  /** Keys in byte order of their UTF-8 encoding. */
  listObjects(bucketId: number, query: ListObjectsQuery): Promise<ObjectSummary[]>;

  // Datanodes.
  registerDatanode(input: { id: string; address: string; capacityBytes: number; usedBytes: number }): Promise<void>;
  heartbeat(id: string, usage: { capacityBytes: number; usedBytes: number }): Promise<void>;
  listDatanodes(): Promise<DatanodeRecord[]>;

  // Background services.
  /** Aborts open keys of kind 'put' not touched for olderThanMs; returns how many. */
  expireOpenKeys(olderThanMs: number): Promise<number>;
  pendingBlockDeletions(limit: number): Promise<BlockDeletion[]>;
  completeBlockDeletions(ids: number[]): Promise<void>;
}
