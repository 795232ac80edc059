// S3 XML documents, built with fast-xml-parser.
import { XMLBuilder } from 'fast-xml-parser';

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, processEntities: true });

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** `<?xml …?><Root xmlns="…">…</Root>` for a response body. */
export function xmlDocument(root: string, body: Record<string, unknown>, namespace = true): string {
  const content = namespace ? { '@xmlns': S3_NAMESPACE, ...body } : body;
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + builder.build({ [root]: content });
}
