/**
 * A small SVG line chart: recall@10 on x (linear), queries/s on y (log10),
 * one line per system. No dependencies; the report embeds the file.
 */

export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtQps(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

export function lineChartSvg(options: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  threshold?: number;
}): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const m = { top: 36, right: 170, bottom: 48, left: 64 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const pts = options.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.y > 0);
  let xMin = pts.length ? Math.min(...pts.map((p) => p.x)) : 0;
  let xMax = pts.length ? Math.max(...pts.map((p) => p.x)) : 1;
  xMin = Math.max(0, Math.floor(xMin * 20) / 20 - 0.05);
  xMax = Math.min(1, Math.ceil(xMax * 20) / 20 + 0.0001);
  if (xMax - xMin < 0.1) xMin = Math.max(0, xMax - 0.1);
  const yMinExp = pts.length ? Math.floor(Math.log10(Math.min(...pts.map((p) => p.y)))) : 0;
  let yMaxExp = pts.length ? Math.ceil(Math.log10(Math.max(...pts.map((p) => p.y)))) : 1;
  if (yMaxExp <= yMinExp) yMaxExp = yMinExp + 1;
  const sx = (x: number) => m.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => m.top + plotH - ((Math.log10(y) - yMinExp) / (yMaxExp - yMinExp)) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${m.left}" y="20" font-size="14" font-weight="bold">${esc(options.title)}</text>`);
  // Grid and y ticks (decades, with 2 and 5 minor lines).
  for (let e = yMinExp; e <= yMaxExp; e++) {
    for (const mult of [1, 2, 5]) {
      const v = mult * 10 ** e;
      if (Math.log10(v) > yMaxExp + 1e-9) continue;
      const y = sy(v).toFixed(1);
      out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + plotW}" y2="${y}" stroke="${mult === 1 ? '#ccc' : '#eee'}"/>`);
      if (mult === 1 || yMaxExp - yMinExp <= 2) out.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmtQps(v)}</text>`);
    }
  }
  // x ticks every 0.05 (or 0.1 on wide ranges).
  const step = xMax - xMin > 0.5 ? 0.1 : 0.05;
  for (let x = Math.ceil(xMin / step) * step; x <= xMax + 1e-9; x += step) {
    const px = sx(x).toFixed(1);
    out.push(`<line x1="${px}" y1="${m.top}" x2="${px}" y2="${m.top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${px}" y="${m.top + plotH + 16}" text-anchor="middle">${x.toFixed(2)}</text>`);
  }
  if (options.threshold !== undefined && options.threshold >= xMin && options.threshold <= xMax) {
    const px = sx(options.threshold).toFixed(1);
    out.push(`<line x1="${px}" y1="${m.top}" x2="${px}" y2="${m.top + plotH}" stroke="#888" stroke-dasharray="4 3"/>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${esc(options.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel)}</text>`);
  options.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const good = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && p.y > 0);
    if (good.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${good.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const p of good) out.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3.5" fill="${color}"/>`);
    const ly = m.top + 10 + i * 20;
    out.push(`<line x1="${m.left + plotW + 12}" y1="${ly}" x2="${m.left + plotW + 32}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<circle cx="${m.left + plotW + 22}" cy="${ly}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${m.left + plotW + 38}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
