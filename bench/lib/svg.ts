/**
 * A hand-written SVG line chart (no charting package: the chart is four
 * points per line, and a dependency would cost more than this file).
 */

export interface Series {
  name: string;
  color: string;
  /** An SVG stroke-dasharray, e.g. "6 4", to tell apart lines of one colour. */
  dash?: string;
  /** y per x; a missing or non-finite y leaves a gap rather than a made-up point. */
  points: readonly { x: number; y: number }[];
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  /** The x values, placed evenly: concurrencies 1, 8, 32, 128 are a log scale in all but name. */
  xs: readonly number[];
  series: readonly Series[];
  width?: number;
  /** Of the plot area with its axes; the legend adds a row per `legendColumns` series below it. */
  height?: number;
  legendColumns?: number;
}

const escapeXml = (value: string) =>
  value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** The smallest 1/2/5 x 10^n at or above `value`, so the axis ends on a round number. */
export function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

export function lineChartSvg(options: ChartOptions): string {
  const width = options.width ?? 640;
  const columns = options.legendColumns ?? 3;
  const legendRows = Math.ceil(options.series.length / columns);
  const height = (options.height ?? 400) + (legendRows - 1) * 18;
  const margin = { top: 56, right: 24, bottom: 54 + legendRows * 18, left: 72 };
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const finite = options.series.flatMap((series) => series.points.map((point) => point.y)).filter(Number.isFinite);
  const yMax = niceCeiling(Math.max(0, ...finite));
  const xAt = (x: number) => {
    const index = options.xs.indexOf(x);
    const slots = Math.max(1, options.xs.length - 1);
    return margin.left + (index / slots) * plotWidth;
  };
  const yAt = (y: number) => margin.top + plotHeight - (y / yMax) * plotHeight;
  const fmt = (value: number) => value.toFixed(1);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="24" font-size="16" font-weight="600">${escapeXml(options.title)}</text>`,
  );
  if (options.subtitle)
    parts.push(`<text x="${margin.left}" y="42" fill="#555555">${escapeXml(options.subtitle)}</text>`);

  const ticks = 5;
  for (let i = 0; i <= ticks; i += 1) {
    const value = (yMax / ticks) * i;
    const y = fmt(yAt(value));
    parts.push(
      `<line x1="${margin.left}" y1="${y}" x2="${margin.left + plotWidth}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${Math.round(value)}</text>`,
    );
  }
  for (const x of options.xs) {
    const px = fmt(xAt(x));
    parts.push(
      `<line x1="${px}" y1="${margin.top + plotHeight}" x2="${px}" y2="${margin.top + plotHeight + 5}" stroke="#333333"/>`,
      `<text x="${px}" y="${margin.top + plotHeight + 20}" text-anchor="middle">${x}</text>`,
    );
  }
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top + plotHeight}" x2="${margin.left + plotWidth}" y2="${margin.top + plotHeight}" stroke="#333333"/>`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotHeight}" stroke="#333333"/>`,
    `<text x="${margin.left + plotWidth / 2}" y="${margin.top + plotHeight + 40}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    `<text transform="translate(18 ${margin.top + plotHeight / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );

  options.series.forEach((series, index) => {
    const dash = series.dash ? ` stroke-dasharray="${escapeXml(series.dash)}"` : "";
    const points = series.points.filter((point) => Number.isFinite(point.y) && options.xs.includes(point.x));
    if (points.length > 1) {
      const path = points.map((point, i) => `${i === 0 ? "M" : "L"}${fmt(xAt(point.x))},${fmt(yAt(point.y))}`);
      parts.push(`<path d="${path.join(" ")}" fill="none" stroke="${series.color}" stroke-width="2.5"${dash}/>`);
    }
    for (const point of points)
      parts.push(
        `<circle cx="${fmt(xAt(point.x))}" cy="${fmt(yAt(point.y))}" r="4" fill="${series.color}"><title>${escapeXml(`${series.name}: ${Math.round(point.y)} events/s at ${point.x}`)}</title></circle>`,
      );
    const legendX = margin.left + (index % columns) * ((width - margin.left - margin.right) / columns);
    // Below the axis label, which sits 40 px under the plot.
    const legendY = margin.top + plotHeight + 62 + Math.floor(index / columns) * 18;
    parts.push(
      `<line x1="${legendX}" y1="${legendY - 7}" x2="${legendX + 16}" y2="${legendY - 7}" stroke="${series.color}" stroke-width="2.5"${dash}/>`,
      `<text x="${legendX + 20}" y="${legendY - 7}" dominant-baseline="middle">${escapeXml(series.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
