import type { ConfigContext } from "./context";

// RFC 7208 §4.6.4: ten DNS lookups at most; `mx` costs one, each include at least one.
const SPF_MAX_INCLUDES = 9;

/**
 * Each SPF include is a domain (`include:` prefix optional), and they fit SPF's lookup limit.
 * Fills `spfIncludes`, without repeats.
 */
export function spfIncludeLimit(ctx: ConfigContext): void {
  ctx.input.spfInclude.forEach((raw, i) => {
    const domain = ctx.domainAt(`spfInclude[${i}]`, raw.replace(/^include:/, ""), { serviceLabels: true });
    if (domain !== undefined && !ctx.spfIncludes.includes(domain)) ctx.spfIncludes.push(domain);
  });
  if (ctx.spfIncludes.length > SPF_MAX_INCLUDES) {
    ctx.fail("spfInclude", `lists ${ctx.spfIncludes.length} domains; SPF allows 10 DNS lookups and \`mx\` takes one, so keep at most ${SPF_MAX_INCLUDES} (fewer if they include others)`);
  }
}
