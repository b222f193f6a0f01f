/** A Markdown table, laid out as Biome formats one, so it can be pasted into bench/README.md as is. */
export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => console.log(`| ${cells.join(' | ')} |`);
  rows.forEach((r, k) => {
    line(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))));
    if (k === 0) line(widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)));
  });
}
