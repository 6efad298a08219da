// Dependency-graph checks shared by every dialect. Pure.

/**
 * Find dependency cycles. `edges(name)` lists the names `name` depends on (unknown names
 * are ignored: they are reported elsewhere). Returns each cycle once, as the list of names
 * along it with the first repeated at the end: `['a', 'b', 'c', 'a']` means a -> b -> c -> a
 * (a requires b, b requires c, c requires a). Iterative, so deep chains do not overflow the stack.
 */
export function findCycles(names: readonly string[], edges: (name: string) => readonly string[]): string[][] {
  const WHITE = 0;
  const GREY = 1;
  const BLACK = 2;
  const color = new Map<string, number>();
  for (const n of names) color.set(n, WHITE);
  const cycles: string[][] = [];
  const stack: string[] = [];
  const iters: number[] = [];
  for (const root of names) {
    if (color.get(root) !== WHITE) continue;
    stack.push(root);
    iters.push(0);
    color.set(root, GREY);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const node = stack[top]!;
      const deps = edges(node);
      const i = iters[top]!;
      if (i >= deps.length) {
        color.set(node, BLACK);
        stack.pop();
        iters.pop();
        continue;
      }
      iters[top] = i + 1;
      const next = deps[i]!;
      const c = color.get(next);
      if (c === undefined || next === node) continue; // unknown job or self-dependency: reported elsewhere
      if (c === GREY) {
        const from = stack.lastIndexOf(next);
        cycles.push([...stack.slice(from), next]);
      } else if (c === WHITE) {
        color.set(next, GREY);
        stack.push(next);
        iters.push(0);
      }
    }
  }
  return cycles;
}
