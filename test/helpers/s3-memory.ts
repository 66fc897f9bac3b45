import {
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectCommandOutput,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';

/**
 * An in-memory bucket behind a mocked S3Client: PutObject / GetObject / ListObjectsV2 (prefix,
 * MaxKeys, ContinuationToken) / DeleteObject. GetObject of a missing key rejects with NoSuchKey,
 * like S3. Keys are shared across buckets unless `perBucket` is set.
 *
 * Test files get one through mockS3Memory() below.
 */
export class S3Memory {
  private readonly objects = new Map<string, string>();

  constructor(private readonly perBucket = false) {}

  /** Wires the in-memory store behind the mock (call after every reset()). */
  attach(mock: AwsClientStub<S3Client>): this {
    mock.on(PutObjectCommand).callsFake(async (input: { Bucket?: string; Key?: string; Body?: unknown }) => {
      this.put(input.Key ?? '', await bodyText(input.Body), input.Bucket);
      return { ETag: '"memory"' };
    });
    mock.on(GetObjectCommand).callsFake(async (input: { Bucket?: string; Key?: string }) => {
      const text = this.get(input.Key ?? '', input.Bucket);
      if (text === undefined) throw new NoSuchKey({ message: `The specified key does not exist: ${input.Key}`, $metadata: {} });
      return { Body: textBody(text), ContentLength: Buffer.byteLength(text) } as unknown as GetObjectCommandOutput;
    });
    mock.on(ListObjectsV2Command).callsFake(async (input: { Bucket?: string; Prefix?: string; MaxKeys?: number; ContinuationToken?: string }) => {
      const all = this.list(input.Prefix ?? '', input.Bucket);
      const start = input.ContinuationToken ? Number(input.ContinuationToken) : 0;
      const max = input.MaxKeys ?? 1000;
      const page = all.slice(start, start + max);
      const truncated = start + max < all.length;
      return {
        Contents: page.map((Key) => ({ Key, Size: Buffer.byteLength(this.get(Key, input.Bucket) ?? '') })),
        KeyCount: page.length,
        IsTruncated: truncated,
        ...(truncated ? { NextContinuationToken: String(start + max) } : {}),
      };
    });
    mock.on(DeleteObjectCommand).callsFake(async (input: { Bucket?: string; Key?: string }) => {
      this.objects.delete(this.id(input.Key ?? '', input.Bucket));
      return {};
    });
    return this;
  }

  put(key: string, body: string | object, bucket?: string): void {
    this.objects.set(this.id(key, bucket), typeof body === 'string' ? body : JSON.stringify(body));
  }

  get(key: string, bucket?: string): string | undefined {
    return this.objects.get(this.id(key, bucket));
  }

  /** Parsed JSON of a key; throws when it is missing, so a test fails with the key's name. */
  json<T = unknown>(key: string, bucket?: string): T {
    const text = this.get(key, bucket);
    if (text === undefined) throw new Error(`no object ${key} in the in-memory bucket (keys: ${this.list('').join(', ')})`);
    return JSON.parse(text) as T;
  }

  has(key: string, bucket?: string): boolean {
    return this.objects.has(this.id(key, bucket));
  }

  /** Keys under a prefix, sorted (as S3 lists them). */
  list(prefix: string, bucket?: string): string[] {
    const scope = this.perBucket ? `${bucket ?? ''}/` : '';
    return [...this.objects.keys()]
      .filter((k) => k.startsWith(scope + prefix))
      .map((k) => k.slice(scope.length))
      .sort();
  }

  clear(): void {
    this.objects.clear();
  }

  private id(key: string, bucket?: string): string {
    return this.perBucket ? `${bucket ?? ''}/${key}` : key;
  }
}

/**
 * Mocks S3Client with an in-memory bucket that is emptied and wired behind the mock again before
 * every test; the other client mocks given are reset then too. Call it at the top level of a test
 * file: it registers a beforeEach, which runs before the file's own beforeEach hooks declared after it.
 *
 *   const ec2 = mockClient(EC2Client);
 *   const { s3Mock, bucket } = mockS3Memory(ec2);
 */
export function mockS3Memory(...otherMocks: { reset(): unknown }[]): { s3Mock: AwsClientStub<S3Client>; bucket: S3Memory } {
  const s3Mock = mockClient(S3Client);
  const bucket = new S3Memory();
  beforeEach(() => {
    for (const mock of otherMocks) mock.reset();
    s3Mock.reset();
    bucket.clear();
    bucket.attach(s3Mock);
  });
  return { s3Mock, bucket };
}

function textBody(text: string): unknown {
  return {
    transformToString: async () => text,
    transformToByteArray: async () => new Uint8Array(Buffer.from(text)),
  };
}

async function bodyText(body: unknown): Promise<string> {
  if (body === undefined || body === null) return '';
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf-8');
  if (typeof (body as { transformToString?: unknown }).transformToString === 'function') {
    return (body as { transformToString: () => Promise<string> }).transformToString();
  }
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks).toString('utf-8');
}
