// What an admin command prints: the view as JSON with --json, else its text.
export function printResult(json: boolean, view: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(view, null, 2) + '\n' : text + '\n');
}
