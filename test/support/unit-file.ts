/** A systemd unit file's settings by section, each key with every value it is given. */
export function unitSections(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let current = "";
  for (const line of text.split("\n")) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) out[(current = header[1])] = {};
    const setting = /^(\w+)=(.*)$/.exec(line);
    if (setting) (out[current][setting[1]] ??= []).push(setting[2]);
  }
  return out;
}
