// S3 XML documents both ways, with fast-xml-parser.
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { s3Error } from './errors.js';

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, processEntities: true });

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** `<?xml …?><Root xmlns="…">…</Root>` for a response body. */
export function xmlDocument(root: string, body: Record<string, unknown>, namespace = true): string {
  const content = namespace ? { '@xmlns': S3_NAMESPACE, ...body } : body;
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + builder.build({ [root]: content });
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  // Numeric character references (&#34;, as Go's encoder writes quotes) must decode too.
  htmlEntities: true,
  isArray: (_name, jpath) => ARRAY_PATHS.has(String(jpath)),
});

// Elements that repeat in request documents, kept as arrays even when there is one.
const ARRAY_PATHS = new Set(['Delete.Object', 'CompleteMultipartUpload.Part', 'Tagging.TagSet.Tag']);

/**
 * Parses a request document. DTDs are refused outright (no entity expansion, no external
 * entities); anything not well-formed is MalformedXML, as AWS answers.
 */
export function parseXml(body: Buffer, root: string): Record<string, unknown> {
  const text = body.toString('utf8');
  if (/<!DOCTYPE|<!ENTITY/i.test(text) || XMLValidator.validate(text) !== true) {
    throw s3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  const document = parser.parse(text) as Record<string, unknown>;
  const content = document[root];
  if (content === undefined || content === null) {
    throw s3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  return typeof content === 'object' ? (content as Record<string, unknown>) : {};
}

/** Text of an element parsed with parseXml (numbers and booleans stay strings). */
export function xmlText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'object') return '';
  return String(value);
}
