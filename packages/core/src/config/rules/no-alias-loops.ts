import type { Alias } from "../model";
import type { ConfigContext } from "./context";

/**
 * No alias reaches itself (a → b → a), generated aliases included: an alias to postmaster@
 * while the postmaster is that alias loops too. Reported at the first alias of the loop the
 * user wrote.
 */
export function noAliasLoops(ctx: ConfigContext): void {
  for (const loop of findLoops(ctx.aliases)) {
    const first = ctx.explicitAliases.find((e) => loop.includes(e.alias.address));
    ctx.fail(first ? `${first.path}.to` : "aliases", `alias loop ${loop.join(" → ")} → ${loop[0]}; break the cycle`);
  }
}

/** Cycles among aliases (depth-first, linear in aliases and targets), each reported once. */
function findLoops(aliases: Alias[]): string[][] {
  const next = new Map(aliases.map((a) => [a.address, a.to]));
  const state = new Map<string, "open" | "done">();
  const loops: string[][] = [];
  const trail: string[] = [];
  const visit = (address: string) => {
    state.set(address, "open");
    trail.push(address);
    for (const target of next.get(address) ?? []) {
      const seen = state.get(target);
      if (seen === "open") loops.push(trail.slice(trail.indexOf(target)));
      else if (seen === undefined && next.has(target)) visit(target);
    }
    trail.pop();
    state.set(address, "done");
  };
  for (const a of aliases) if (!state.has(a.address)) visit(a.address);
  return loops;
}
