import { sendApply } from './apply.ts';

/**
 * `gatehouse diff -f <file|dir>... [-n ns]`: what apply would change, as a field diff (a dry-run
 * apply). Exit codes as kubectl diff: 0 nothing differs, 1 something differs, 2 refused or failed.
 */
export async function runDiff(args: string[]): Promise<number> {
  const outcome = await sendApply(args, true, 'diff');
  if ('code' in outcome) return outcome.code === 0 ? 0 : 2;
  let different = false;
  for (const r of outcome.results) {
    if (r.action === 'unchanged') continue;
    different = true;
    const id = `${r.kind.toLowerCase()}/${r.name} (namespace ${r.namespace})`;
    process.stdout.write(
      `--- ${r.action === 'created' ? '/dev/null' : `${id} resourceVersion ${r.resourceVersion}`}\n+++ ${id}${r.action === 'created' ? ' (new)' : ''}\n`,
    );
    for (const line of r.diffText) process.stdout.write(`${line}\n`);
  }
  return different ? 1 : 0;
}
