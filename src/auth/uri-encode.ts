// AWS's URI encoding for SigV4: every byte except A-Z a-z 0-9 - . _ ~ becomes %XY (upper hex).

const UNRESERVED_ONLY = /^[A-Za-z0-9\-._~]*$/;
const UNRESERVED_OR_SLASH = /^[A-Za-z0-9\-._~/]*$/;
/**
 * Unreserved characters and upper-case %XY escapes of the ASCII bytes AWS encodes (not of
 * letters, digits or -._~), so already canonical: a presigned credential's %2F, without a
 * decode and an encode. One way to match each character, so no backtracking.
 */
const CANONICAL_ESCAPED = /^(?:[A-Za-z0-9\-._~]|%(?:[01][0-9A-F]|2[0-9A-CF]|3[A-F]|40|5[B-E]|60|7[B-DF]))*$/;
/** What encodeURIComponent leaves alone but AWS encodes. */
const SUBDELIMS = /[!'()*]/g;

/**
 * Built on encodeURIComponent (native, so several times faster than a loop over bytes, and
 * every signed request encodes its path and each query parameter). Lone surrogates become
 * U+FFFD first, as UTF-8 encoding them would.
 */
export function awsUriEncode(value: string, keepSlash = false): string {
  if ((keepSlash ? UNRESERVED_OR_SLASH : UNRESERVED_ONLY).test(value)) return value;
  const encoded = encodeURIComponent(value.toWellFormed()).replace(SUBDELIMS, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

/**
 * A raw query-string name or value as SigV4's canonical query has it: decoded ('+' is a space)
 * and encoded again; undefined when its percent-encoding is malformed. One of only unreserved
 * characters (most of a presigned URL's), or with escapes only where AWS has them, is already
 * canonical.
 */
export function canonicalQueryComponent(raw: string): string | undefined {
  if (UNRESERVED_ONLY.test(raw) || CANONICAL_ESCAPED.test(raw)) return raw;
  const decoded = safeDecode(raw.replace(/\+/g, ' '));
  return decoded === undefined ? undefined : awsUriEncode(decoded);
}

/** Percent-decoding that returns undefined for malformed input instead of throwing. */
export function safeDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}
