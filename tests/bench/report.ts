import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface BenchRow {
  name: string;
  /** What was measured, in words and figures. */
  result: string;
  target: string;
  met: boolean;
}

/**
 * Replace this benchmark's section of docs/benchmarks.md with fresh figures, keeping the other
 * sections, so each `make bench` run leaves one current table per benchmark.
 */
export async function writeBenchSection(section: string, rows: BenchRow[], notes: string[] = []): Promise<void> {
  const file = path.join(process.cwd(), 'docs', 'benchmarks.md');
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    text = '# Benchmarks\n\nWritten by `make bench`; each section is replaced by its latest run.\n';
  }
  const header = `## ${section}`;
  const before = previousResults(text, header);
  const body = [
    header,
    '',
    `Measured ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.`,
    '',
    '| measurement | result | before | target | met |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.result} | ${before.get(r.name) ?? '—'} | ${r.target} | ${r.met ? 'yes' : '**no**'} |`),
    ...(notes.length ? ['', ...notes] : []),
    '',
  ].join('\n');
  const start = text.indexOf(header + '\n');
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${body}`;
  } else {
    const next = text.indexOf('\n## ', start + header.length);
    text = text.slice(0, start) + body + (next === -1 ? '' : text.slice(next + 1));
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, text.endsWith('\n') ? text : `${text}\n`);
  for (const r of rows) console.log(`${section}: ${r.name}: ${r.result} (before: ${before.get(r.name) ?? 'none'}; target ${r.target}) ${r.met ? 'met' : 'NOT met'}`);
}

/**
 * The results the section held before this run, by measurement name, so that each new figure is
 * printed and written beside the one it replaces and a regression shows the day it lands. Reads
 * tables with or without the "before" column.
 */
export function previousResults(text: string, header: string): Map<string, string> {
  const out = new Map<string, string>();
  const start = text.indexOf(header + '\n');
  if (start === -1) return out;
  const next = text.indexOf('\n## ', start + header.length);
  const section = text.slice(start, next === -1 ? undefined : next);
  const lines = section.split('\n');
  const head = lines.find((l) => l.startsWith('| measurement |'));
  if (!head) return out;
  const columns = splitRow(head);
  const result = columns.indexOf('result');
  for (const line of lines) {
    if (!line.startsWith('| ') || line === head || line.startsWith('|---')) continue;
    const cells = splitRow(line);
    if (cells[0] && cells[result] !== undefined) out.set(cells[0], cells[result]);
  }
  return out;
}

/** The cells of a Markdown table row (no cell of ours holds a "|"). */
function splitRow(line: string): string[] {
  return line.replace(/^\|\s?/, '').replace(/\s?\|$/, '').split(' | ').map((c) => c.trim());
}
