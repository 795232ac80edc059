// Polls a condition until it holds, or fails the test with what it waited for.
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000, pollMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
