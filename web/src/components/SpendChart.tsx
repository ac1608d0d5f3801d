import { Group } from "@visx/group";
import { scaleBand, scaleLinear } from "@visx/scale";
import { Bar } from "@visx/shape";
import { money } from "../lib/format";

export type SpendRow = { id: string; label: string; micros: bigint };

/**
 * Horizontal bars, one per row, drawn as SVG (visx: d3 scales and React shapes), so every
 * bar is an element with its value in text that a person, a screen reader and a test can
 * read. Loaded only on the pages that chart something.
 */
export default function SpendChart({ rows, title }: { rows: SpendRow[]; title: string }) {
  const barH = 22;
  const labelW = 180;
  const valueW = 110;
  const width = 720;
  const height = rows.length * (barH + 8) + 8;
  const max = rows.reduce((m, r) => (Number(r.micros) > m ? Number(r.micros) : m), 0) || 1;
  const x = scaleLinear<number>({ domain: [0, max], range: [0, width - labelW - valueW] });
  const y = scaleBand<string>({ domain: rows.map((r) => r.id), range: [4, height - 4], padding: 0.25 });
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg width="100%" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={title}>
        {rows.map((r) => {
          const top = y(r.id) ?? 0;
          const w = Math.max(Number(r.micros) > 0 ? 2 : 0, x(Number(r.micros)));
          return (
            <Group key={r.id} top={top}>
              <text x={labelW - 8} y={y.bandwidth() / 2} dy="0.35em" textAnchor="end" className="chart-label">
                {r.label}
              </text>
              <Bar x={labelW} width={w} height={y.bandwidth()} rx={3} className="chart-bar">
                <title>{`${r.label}: ${money(r.micros)}`}</title>
              </Bar>
              <text x={labelW + w + 6} y={y.bandwidth() / 2} dy="0.35em" className="chart-value">
                {money(r.micros)}
              </text>
            </Group>
          );
        })}
      </svg>
    </figure>
  );
}
